"""Query parameters shared by the paginated lists (/api/messages, /api/inbound, webhook
deliveries): page and per_page, timestamps, ids in paths, and the page's JSON shape."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from smsnodes_hub.errors import InvalidRequest, NotFound
from smsnodes_hub.timefmt import parse_iso

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000


@dataclass(frozen=True, slots=True)
class Page:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def body(self, data: list[Any], total: int) -> dict[str, Any]:
        return {
            "data": data,
            "page": self.page,
            "perPage": self.per_page,
            "total": total,
            "totalPages": math.ceil(total / self.per_page),
        }


MAX_DIGITS = 18  # every such number fits a bigint, and int() never meets its digit limit


def plain_number(raw: str) -> bool:
    """A whole number written plainly, of at most MAX_DIGITS digits: what int() may be given.
    (str.isdigit() alone also accepts "²" and other digits int() refuses, and int() refuses
    more than 4300 digits with a ValueError.)"""
    return raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS


def int_param(request: web.Request, name: str, default: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not plain_number(raw) or int(raw) < 1 or (high is not None and int(raw) > high):
        bound = f" to {high}" if high is not None else " or more"
        raise InvalidRequest(f"{name} must be a whole number from 1{bound}")
    return int(raw)


def page_params(request: web.Request) -> Page:
    return Page(int_param(request, "page", 1, MAX_PAGE),
                int_param(request, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE))


def time_param(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_iso(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 timestamp") from None


def path_id(request: web.Request, what: str) -> int:
    """The `{id}` of the path; anything but a plain positive number is simply not found."""
    raw = request.match_info["id"]
    if not plain_number(raw) or len(raw) > 18:
        raise NotFound(f"{what} {raw[:40]} not found")
    return int(raw)
