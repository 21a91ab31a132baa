// The dashboard's only hand-written script. Live updates are htmx polls of server-rendered
// fragments (hx-trigger="every Ns" in the templates); this file handles what htmx leaves to
// the page. It is a file, not inline: the Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  function stale(show) {
    var banner = document.getElementById("stale");
    if (banner) banner.hidden = !show;
  }

  // 401: the session ended (logout elsewhere, expiry, `admin passwd`). Reloading the page
  // leads to the login form, which brings the operator back here afterwards.
  document.addEventListener("htmx:responseError", function (event) {
    if (event.detail.xhr.status === 401) {
      window.location.reload();
    } else {
      stale(true);
    }
  });
  // The hub did not answer at all: keep showing the last data, say it is not live.
  document.addEventListener("htmx:sendError", function () { stale(true); });
  document.addEventListener("htmx:afterSwap", function () { stale(false); });

  // Forms with data-confirm ask first (disconnect, end sessions, revoke, cancel).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
