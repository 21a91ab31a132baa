"""Operators' logins: server-side sessions in signed cookies, CSRF tokens, the same-origin
check, and the guard that lets no dashboard page or fragment answer without a session.

Sessions (docs/dashboard.md explains the choice): the cookie holds a random 256-bit id and
an HMAC of it; the database keeps only the id's SHA-256. Logging out deletes the row, which
ends the session in every hub process at once; a stolen copy of the table opens nothing;
and a cookie that was not made by this hub is refused before any database query.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import web

from smsnodes_hub import keyfile
from smsnodes_hub.appkeys import POOL
from smsnodes_hub.config import Settings
from smsnodes_hub.dashboard import operator_queries
from smsnodes_hub.dashboard.keys import DASHBOARD, OPERATOR
from smsnodes_hub.db import UNAVAILABLE

log = logging.getLogger(__name__)

KEY_FILE = "dashboard-session.key"
SESSION_BYTES = 32  # 256-bit session ids
LOGIN_PATH = "/dashboard/login"
LOGOUT_PATH = "/dashboard/logout"
STATIC_PREFIX = "/dashboard/static/"
FRAGMENT_PREFIX = "/dashboard/fragments/"
CSRF_FIELD = "csrf"
LOGIN_COOKIE_SECONDS = 3600

# Applied to every dashboard answer. The pages need no inline script or style, so the
# policy allows neither; frames are refused (no clickjacking of the action buttons).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
NO_STORE = {"Cache-Control": "no-store"}


DashboardKeyError = keyfile.KeyFileError  # the session key file cannot be used


@dataclass(frozen=True, slots=True)
class Operator:
    """The operator behind a request, and what their forms must carry."""

    operator_id: int
    username: str
    session_id: int
    csrf: str
    expires_at: datetime


class DashboardState:
    """Per-application dashboard state: the signing key (loaded on first use), cookie
    settings and the rendered /docs pages. (Operators' failed logins are throttled by the
    hub's LoginThrottle, in a scope of their own.)"""

    __slots__ = ("_key", "_key_path", "_secret", "docs_pages", "lifetime", "origin", "refresh",
                 "secure")

    def __init__(self, settings: Settings) -> None:
        dash = settings.dashboard
        self._secret = dash.session_secret
        self._key_path = Path(settings.database.data_dir) / KEY_FILE
        self._key: bytes | None = None
        self.lifetime = dash.session_lifetime_hours * 3600
        self.refresh = dash.refresh_seconds
        # Behind a reverse proxy the browser's address is configured, not guessed from
        # forwarded headers (which anyone can send when the hub is also reachable directly).
        self.origin = origin_of(dash.public_origin) if dash.public_origin else None
        # An https:// public origin means the browser speaks TLS even if the hub does not.
        self.secure = settings.tls or (self.origin or "").startswith("https://")
        self.docs_pages: dict[str, str] = {}  # /docs as rendered, by base URL

    # -- Keys and signatures ----------------------------------------------------------------

    def key(self) -> bytes:
        if self._key is None:
            material = self._secret.encode() if self._secret else load_key_file(self._key_path)
            self._key = hmac.new(material, b"smsnodes-hub/v1/dashboard", sha256).digest()
        return self._key

    def _mac(self, purpose: bytes, raw: bytes) -> bytes:
        return hmac.new(self.key(), purpose + b"\x00" + raw, sha256).digest()

    def cookie_value(self, raw: bytes) -> str:
        return f"{_b64(raw)}.{_b64(self._mac(b'session', raw))}"

    def session_raw(self, value: str | None) -> bytes | None:
        """The session id in a cookie this hub signed, else None (no database query)."""
        if not value or len(value) > 200:
            return None
        encoded, _, signature = value.partition(".")
        raw, mac = _unb64(encoded), _unb64(signature)
        if raw is None or mac is None or len(raw) != SESSION_BYTES:
            return None
        return raw if hmac.compare_digest(mac, self._mac(b"session", raw)) else None

    def csrf_for(self, raw: bytes) -> str:
        return _b64(self._mac(b"csrf", raw))

    def login_csrf(self, nonce: str) -> str:
        return _b64(self._mac(b"login", nonce.encode()))

    # -- Cookies ----------------------------------------------------------------------------

    @property
    def session_cookie(self) -> str:
        # __Host-: the browser only accepts it over HTTPS, for this exact host, on path /.
        return "__Host-smsnodes_session" if self.secure else "smsnodes_session"

    @property
    def login_cookie(self) -> str:
        return "__Secure-smsnodes_login" if self.secure else "smsnodes_login"

    def set_session_cookie(self, response: web.StreamResponse, raw: bytes) -> None:
        response.set_cookie(
            self.session_cookie, self.cookie_value(raw), max_age=int(self.lifetime), path="/",
            httponly=True, samesite="Strict", secure=self.secure,
        )

    def clear_session_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(self.session_cookie, path="/", secure=self.secure,
                            httponly=True, samesite="Strict")

    def set_login_cookie(self, response: web.StreamResponse, nonce: str) -> None:
        response.set_cookie(
            self.login_cookie, nonce, max_age=LOGIN_COOKIE_SECONDS, path=LOGIN_PATH,
            httponly=True, samesite="Strict", secure=self.secure,
        )

    def clear_login_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(self.login_cookie, path=LOGIN_PATH, secure=self.secure,
                            httponly=True, samesite="Strict")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def load_key_file(path: Path) -> bytes:
    return keyfile.load_key_file(path, what="the dashboard session key",
                                 loss="every dashboard login then ends")


def session_hash(raw: bytes) -> bytes:
    return sha256(raw).digest()


async def current_operator(request: web.Request) -> Operator | None:
    state = request.config_dict[DASHBOARD]
    raw = state.session_raw(request.cookies.get(state.session_cookie))
    if raw is None:
        return None
    row = await operator_queries.find_session(request.config_dict[POOL], session_hash(raw))
    if row is None:
        return None
    return Operator(row.operator_id, row.username, row.session_id, state.csrf_for(raw),
                    row.expires_at)


# -- The guard ------------------------------------------------------------------------------


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, lower case, without a default port; None for
    anything else. Browsers leave the default port out of Origin, operators may not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    shown = "" if port in (None, DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host.lower()}{shown}"


def same_origin(request: web.Request) -> bool:
    """The form was posted from a page of this dashboard. Browsers send Origin with every
    POST; Referer is the fallback for old ones. Neither, or "null": refused.

    With `dashboard.public_origin` set, the source must be that origin (behind a proxy the
    Host header names the upstream, not what the browser used); otherwise its host and port
    must be the request's Host."""
    source = request.headers.get("Origin")
    if not source or source == "null":
        source = request.headers.get("Referer")
    if not source:
        return False
    configured = request.config_dict[DASHBOARD].origin
    if configured is not None:
        return origin_of(source) == configured
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a dashboard path of this hub (no open redirect)."""
    if (target and target.startswith("/dashboard") and not target.startswith("//")
            and "\\" not in target and not target.startswith(LOGIN_PATH)):
        return target
    return "/dashboard"


def harden(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refused(text: str, status: int) -> web.Response:
    page = ("<!doctype html><html lang=en><meta charset=utf-8><title>smsnodes-hub</title>"
            f"<p>{text}</p><p><a href=/dashboard>Back to the dashboard</a></p></html>")
    return web.Response(text=page, status=status, content_type="text/html", headers=NO_STORE)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every dashboard request but its static files needs a live session, except the login
    form itself; every POST needs the same origin and the form's CSRF token."""
    if request.path.startswith(STATIC_PREFIX):
        return await handler(request)
    try:
        response = await _guarded(request, handler)
    except web.HTTPException as exc:
        harden(exc)
        exc.headers.update(NO_STORE)
        raise
    except UNAVAILABLE:
        response = refused("The database cannot be reached right now. Try again in a few "
                           "seconds.", 503)
        response.headers["Retry-After"] = "5"
    harden(response)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    operator = await current_operator(request)
    public = request.path == LOGIN_PATH
    if operator is None and not public:
        return _login_needed(request)
    if request.method not in ("GET", "HEAD"):
        if not same_origin(request):
            return refused("This form was not sent from a page of this dashboard.", 403)
        form = await request.post()
        token = form.get(CSRF_FIELD)
        # The login form carries a token tied to its own cookie (there is no session yet),
        # even when another tab logged in meanwhile.
        expected = _login_csrf(request) if public or operator is None else operator.csrf
        if not isinstance(token, str) or not expected or not hmac.compare_digest(
                token.encode(), expected.encode()):
            return refused("This form has expired. Go back, reload the page and try again.",
                           403)
    if operator is not None:
        request[OPERATOR] = operator
    return await handler(request)


def _login_csrf(request: web.Request) -> str | None:
    state = request.config_dict[DASHBOARD]
    nonce = request.cookies.get(state.login_cookie)
    if not nonce or len(nonce) > 100:
        return None
    return state.login_csrf(nonce)


def _login_needed(request: web.Request) -> web.StreamResponse:
    if request.path.startswith(FRAGMENT_PREFIX):
        # The page's script reloads the page on this, which leads to the login form.
        return web.Response(text="Login required", status=401, headers=NO_STORE)
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPSeeOther(LOGIN_PATH)  # an action without a session: nothing is done
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        # Arrived by a link from another site: the SameSite=Strict cookie was held back.
        # Reloading from here makes it a same-site request, which carries it.
        return web.Response(
            text='<!doctype html><meta http-equiv="refresh" content="0"><title>…</title>',
            content_type="text/html", headers=NO_STORE,
        )
    target = f"{LOGIN_PATH}?next={quote(request.path_qs, safe='/')}"
    raise web.HTTPSeeOther(target)
