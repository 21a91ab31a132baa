"""The operator dashboard (/dashboard), the API docs page (/docs) and /metrics.

`setup(app)` wires all three into the hub's application. The dashboard is a sub-application
mounted at /dashboard: its guard middleware (sessions, CSRF, security headers) runs for its
own routes only, never on the API's hot path."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from smsnodes_hub import __version__
from smsnodes_hub.appkeys import SETTINGS
from smsnodes_hub.dashboard import docs_page, metrics, views
from smsnodes_hub.dashboard.auth import DashboardState, guard
from smsnodes_hub.dashboard.keys import DASHBOARD, JINJA

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PREFIX = "/dashboard"

# The dashboard sub-application (tests list its routes to check every one is guarded).
SUBAPP = web.AppKey("dashboard_app", web.Application)


def setup(app: web.Application) -> None:
    """Add the dashboard, /docs and /metrics to the hub's application."""
    settings = app[SETTINGS]
    env = aiohttp_jinja2.setup(
        app, app_key=JINJA, loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        default_helpers=False,
    )
    env.filters.update(when=when, ago=ago, iso=iso, target=webhook_target,
                       scrub=scrub_urls, redact=redact_numbers)
    env.globals["version"] = __version__
    app[DASHBOARD] = DashboardState(settings)

    sub = web.Application(middlewares=[guard])
    views.add_routes(sub)
    sub.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.add_subapp(PREFIX, sub)
    app[SUBAPP] = sub

    app.router.add_get("/docs", docs_page.docs)
    metrics.setup(app)


# -- Template filters -----------------------------------------------------------------------


def when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{seconds} s"
    elif seconds < 3600:
        text = f"{seconds // 60} min"
    elif seconds < 86400 * 2:
        text = f"{seconds // 3600} h {seconds % 3600 // 60} min"
    else:
        text = f"{seconds // 86400} days"
    return f"in {text}" if future else f"{text} ago"


def webhook_target(url: str) -> str:
    """Scheme, host and port of a webhook URL: paths and queries often carry the
    receiver's secret (hooks.example/services/T0/B0/XXXX), so they are not shown."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


_URL = re.compile(r"https?://[^\s'\"<>]+")


def scrub_urls(text: str | None) -> str:
    """An error text with any URL cut down to its origin (see webhook_target)."""
    if not text:
        return ""
    return _URL.sub(_origin_only, text)[:300]


def _origin_only(match: re.Match[str]) -> str:
    # Punctuation that ends a sentence ("…?sig=abc: 500") is the text's, not the URL's.
    url = match.group(0)
    bare = url.rstrip(".,:;!?)]}")
    return webhook_target(bare) + url[len(bare):]


# Something that may be a phone number: a "+" and a digit, or a run of digits that may be
# split by spaces, dots, dashes, slashes or brackets (counted below: 5 digits or more).
_NUMBER_LIKE = re.compile(r"\+?\(?\d(?:[\d\s().\-/]*\d)?")
MIN_NUMBER_DIGITS = 5
NUMBER_PLACEHOLDER = "[number]"


def redact_numbers(text: str | None) -> str:
    """A text a phone wrote (a recipient's error), with anything like a phone number replaced
    by a placeholder: the dashboard must never show a number, and the phone app chooses this
    text. Android's result codes (RESULT_ERROR_NO_SERVICE) and short counts pass as they are."""
    if not text:
        return ""

    def hide(match: re.Match[str]) -> str:
        found = match.group(0)
        digits = sum(c.isdigit() for c in found)
        return NUMBER_PLACEHOLDER if found.startswith("+") or digits >= MIN_NUMBER_DIGITS \
            else found

    return _NUMBER_LIKE.sub(hide, text)[:300]
