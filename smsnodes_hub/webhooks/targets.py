"""Where a webhook may point: URL rules, address checks, IP literals and the PublicResolver."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from ..config import WebhookSettings
from .errors import WebhookError

MAX_URL = 2048
RESOLVE_TIMEOUT = 5.0

# Cloud metadata and host-agent addresses. Most are link-local or private anyway; the ones
# that are not (Azure's wire server) are named here.
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressNotAllowed(OSError):
    """A webhook target that is (or resolves only to) a non-public address."""


def address_allowed(address: Address) -> bool:
    """Only global unicast addresses: never loopback, private, shared, link-local,
    unique-local, multicast, reserved, unspecified or a cloud metadata service, also when
    wrapped in an IPv6 form (IPv4-mapped, 6to4, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not address_allowed(embedded):
            return False
        if address.scope_id:
            return False
    return not (
        address in _METADATA
        or not address.is_global
        or address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def ip_literal(host: str) -> Address | None:
    """The address of a host written as an IP literal; None for a host name. Uses aiohttp's
    own test (digits and dots, or a colon), since aiohttp skips the resolver for exactly
    these: what looks like a literal but does not parse is refused."""
    if ":" not in host and not host.replace(".", "").isdigit():
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise AddressNotAllowed(f"{host[:60]} is not a valid IP address") from None


def parse_url(raw: object, settings: WebhookSettings) -> URL:
    """The URL's shape: https (or http when allowed), a host, no credentials."""
    if not isinstance(raw, str) or not raw.strip():
        raise WebhookError("url is required: the https:// address of your receiver")
    if len(raw) > MAX_URL:
        raise WebhookError(f"url must be at most {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise WebhookError("url must not contain spaces or control characters")
    try:
        url = URL(raw)
        host = url.host
    except (ValueError, TypeError):
        raise WebhookError("url is not a valid URL") from None
    if url.scheme not in ("https", "http"):
        raise WebhookError("url must start with https://")
    if url.scheme == "http" and not settings.allow_http:
        raise WebhookError("url must use https:// (http:// needs webhooks.allow_http)")
    if not host:
        raise WebhookError("url must name a host")
    if url.user is not None or url.password is not None:
        raise WebhookError(
            "url must not contain a user name or password: verify the signature instead"
        )
    return url


async def check_url(raw: object, settings: WebhookSettings) -> str:
    """Refuse a URL that is malformed or whose host is not public (an IP literal, or a name
    any of whose addresses is not public). Returns the URL as given."""
    url = parse_url(raw, settings)
    assert isinstance(raw, str) and url.host is not None
    if settings.allow_private:
        return raw
    host = url.host
    refusal = ("url must point to a public address: {} is loopback, private, link-local "
               "or otherwise internal (needs webhooks.allow_private)")
    try:
        literal = ip_literal(host)
    except AddressNotAllowed as exc:
        raise WebhookError(f"url: {exc}") from None
    if literal is not None:
        if not address_allowed(literal):
            raise WebhookError(refusal.format(host))
        return raw
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, url.port or 443, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError, UnicodeError):
        raise WebhookError(f"url: the host {host[:100]} does not resolve") from None
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    for address in sorted(addresses, key=str):
        if not address_allowed(address):
            raise WebhookError(refusal.format(f"{host[:100]} ({address})"))
    if not addresses:
        raise WebhookError(f"url: the host {host[:100]} does not resolve")
    return raw


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, minus every address that is not public: a host name that
    resolves (or is rebound after registration) to an internal address fails to connect.
    aiohttp does not call resolvers for IP literals; the worker checks those itself."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept = [r for r in results
                if address_allowed(ipaddress.ip_address(r["host"].split("%")[0]))]
        if not kept:
            raise AddressNotAllowed(f"{host[:100]} has no public address")
        return kept

    async def close(self) -> None:
        await self._inner.close()
