"""Where a webhook may point: URL rules, address checks, IP literals, the PublicResolver and
the certificates a receiver may show."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from smsnodes_hub.config import WebhookSettings
from smsnodes_hub.webhooks.errors import WebhookError

MAX_URL = 2048
RESOLVE_TIMEOUT = 5.0

# Cloud metadata and host-agent addresses. Most are in a denied range anyway; the ones
# that are not (Azure's wire server) are named here.
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.253", "fd00:ec2::254", "fd00:ec2::23",
    "100.100.100.200", "168.63.129.16", "192.0.0.192",
))

# Every special-purpose range that is not a public unicast target, written out rather than
# taken from `is_global` / `is_private`, whose answers change between Python patch releases
# (3.11.7 still calls fec0::/10 and most of 192.0.0.0/24 global).
_DENIED_V4 = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8",        # "this network", unspecified
    "10.0.0.0/8",       # private
    "100.64.0.0/10",    # shared (carrier-grade NAT)
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link-local, cloud metadata
    "172.16.0.0/12",    # private
    "192.0.0.0/24",     # IETF protocol assignments (DS-Lite, NAT64 discovery, ...)
    "192.0.2.0/24",     # documentation
    "192.88.99.0/24",   # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",   # private
    "198.18.0.0/15",    # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",   # documentation
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, broadcast
))
_DENIED_V6 = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96",            # unspecified, loopback, IPv4-compatible (deprecated)
    "::ffff:0:0/96",    # IPv4-mapped: a v4 target is written as v4
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b:1::/48",   # local-use NAT64
    "100::/64",         # discard
    "2001::/23",        # IETF protocol assignments (Teredo, benchmarking, ORCHID, ...)
    "2001:db8::/32",    # documentation
    "3fff::/20",        # documentation
    "5f00::/16",        # SRv6 segment identifiers
    "fc00::/7",         # unique-local
    "fe80::/10",        # link-local
    "fec0::/10",        # site-local (deprecated)
    "ff00::/8",         # multicast
))
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressNotAllowed(OSError):
    """A webhook target that is (or resolves only to) a non-public address."""


def address_allowed(address: Address) -> bool:
    """Only public unicast addresses: never loopback, private, shared, link-local,
    unique-local, site-local, multicast, reserved, documentation, unspecified or a cloud
    metadata service, also when wrapped in an IPv6 form (IPv4-mapped or -compatible, 6to4,
    NAT64). The explicit lists decide; the stdlib's `is_global` can only add refusals."""
    if address in _METADATA:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        if address in _NAT64:
            # The well-known NAT64 prefix reaches the IPv4 address in its last 32 bits.
            return address_allowed(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in _SIXTOFOUR:
            embedded = address.sixtofour
            if embedded is None or not address_allowed(embedded):
                return False
        elif address not in _GLOBAL_UNICAST_V6:
            return False  # outside 2000::/3 nothing is assigned for public unicast
        if any(address in net for net in _DENIED_V6):
            return False
    elif any(address in net for net in _DENIED_V4):
        return False
    # The other flags (multicast, loopback, link-local, reserved, ...) are all within the
    # denied ranges above, or outside 2000::/3.
    return address.is_global


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
        # asyncio.timeout, not wait_for: a delivery cancelled at shutdown must end (3.11's
        # wait_for can swallow a cancel that arrives as the lookup completes).
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, url.port or 443, type=socket.SOCK_STREAM)
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


def trusted_cas(settings: WebhookSettings) -> ssl.SSLContext:
    """The CAs a receiver's certificate may chain to: the system's (as OpenSSL finds them
    when the hub starts, SSL_CERT_FILE included), plus those of `webhooks.ca_file` (a private
    CA, or a receiver's self-signed certificate) when it is set."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)  # added, not instead
    return context


_NAME_MISMATCH = (62, 64)  # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH


def untrusted(problem: Exception) -> str:
    """A certificate that does not verify, in words: OpenSSL's reason, and the way out."""
    reason = getattr(problem, "verify_message", None) or str(problem) or type(problem).__name__
    if getattr(problem, "verify_code", None) in _NAME_MISMATCH:
        return f"TLS: the receiver's certificate is not valid for the URL's host ({reason})"
    return (f"TLS: the receiver's certificate is not trusted ({reason}); a private CA or a "
            "self-signed certificate needs webhooks.ca_file")
