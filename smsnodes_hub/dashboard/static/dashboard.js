// The dashboard's only hand-written script. Live updates are htmx polls of server-rendered
// fragments (hx-trigger="every Ns, resume" in the templates); this file handles what htmx
// leaves to the page. It is a file, not inline: the Content-Security-Policy allows no inline
// script (and no eval, so htmx's trigger filters cannot be used: the checks live here).
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

  // Keyboard focus inside a live region: skip its refreshes until the focus leaves, then
  // refresh at once. Swapping the content under a keyboard or screen-reader user would move
  // them (or make the reader announce the focused link again every few seconds). Focus
  // left by a mouse click pauses nothing: a stray click must not stop the live view. The
  // last kind of input is tracked here rather than read from :focus-visible, which the
  // focus htmx puts back after a swap would turn on.
  var missed = new WeakSet();
  var usingKeyboard = false;

  document.addEventListener("keydown", function (event) {
    if (!event.ctrlKey && !event.metaKey && !event.altKey) usingKeyboard = true;
  }, true);
  document.addEventListener("pointerdown", function () { usingKeyboard = false; }, true);

  function keyboardFocusIn(region) {
    var active = document.activeElement;
    return usingKeyboard && active !== null && active !== document.body &&
      region.contains(active);
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var region = event.detail.elt;
    if (keyboardFocusIn(region)) {
      missed.add(region);
      event.preventDefault();
    }
  });
  document.addEventListener("focusout", function (event) {
    var region = event.target.closest && event.target.closest("[hx-get]");
    if (!region || !missed.has(region)) return;
    if (event.relatedTarget && region.contains(event.relatedTarget)) return;
    missed.delete(region);
    window.htmx.trigger(region, "resume");
  });

  // A refresh replaces the region's content. Every focusable element in a fragment has an
  // id that survives refreshes, and htmx puts the focus back on it; what htmx does not keep
  // is how far a box (a wide table) was scrolled, so that is carried over here, by id.
  var before = new WeakMap();

  document.addEventListener("htmx:beforeSwap", function (event) {
    var region = event.detail.target;
    var active = document.activeElement;
    var scrolled = [];
    region.querySelectorAll(".table-wrap[id]").forEach(function (box) {
      if (box.scrollLeft || box.scrollTop) scrolled.push([box.id, box.scrollLeft, box.scrollTop]);
    });
    before.set(region, {
      scrolled: scrolled,
      hadFocus: active !== null && region.contains(active),
    });
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var region = event.detail.target;
    var saved = before.get(region);
    stale(false);
    if (!saved) return;
    before.delete(region);
    saved.scrolled.forEach(function (entry) {
      var box = document.getElementById(entry[0]);
      if (box) {
        box.scrollLeft = entry[1];
        box.scrollTop = entry[2];
      }
    });
    // The focused element is gone for good (its row left the list): keep the focus in the
    // region rather than let it fall back to the top of the page.
    var active = document.activeElement;
    if (saved.hadFocus && (active === null || active === document.body)) {
      region.setAttribute("tabindex", "-1");
      region.focus({ preventScroll: true });
    }
  });

  // Forms with data-confirm ask first (disconnect, end sessions, revoke, cancel).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
