"""Who the client is, by address: the peer of the connection, or, when that peer is one of
`server.trusted_proxies`, the address a proxy put in `X-Forwarded-For`. The login throttle,
the send rate limit, the session tables and the logs all count clients by this address.

Anyone can send X-Forwarded-For, so it is believed only from a trusted peer, and only as far
as the chain stays trusted: reading right to left (each proxy appends the address it saw),
the first address that is not a trusted proxy is the client. A client that writes its own
X-Forwarded-For only adds entries to the left of that one, which are never read."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

from smsnodes_hub.appkeys import TRUSTED_PROXIES

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def parse(text: str) -> Address | None:
    """An address as a peer or a proxy writes it: plain, `[v6]`, `[v6]:port`, `v4:port`;
    an IPv4-mapped IPv6 address is its IPv4 address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class TrustedProxies:
    __slots__ = ("networks",)

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in entries)

    def trusts(self, ip: Address) -> bool:
        return any(ip in network for network in self.networks)

    def client(self, peer: str | None, forwarded: Iterable[str]) -> str:
        """The client's address, from the connection's `peer` and the X-Forwarded-For
        header values (in the order received)."""
        if peer is None:
            return UNKNOWN
        if not self.networks:
            return peer
        nearest = parse(peer)
        if nearest is None or not self.trusts(nearest):
            return peer
        hops = [hop for value in forwarded for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            ip = parse(hop)
            if ip is None:
                # Not an address: whoever wrote it, the proxy that passed it on is the last
                # thing known for sure (never a fresh key of the sender's choosing).
                return str(nearest)
            if not self.trusts(ip):
                return str(ip)
            nearest = ip
        return str(nearest)  # every hop a trusted proxy: the left-most one


def client_address(request: web.Request) -> str:
    """The client's address for this request (also for the dashboard, a sub-application)."""
    proxies = request.config_dict.get(TRUSTED_PROXIES)
    if proxies is None or not proxies.networks:
        return request.remote or UNKNOWN
    return proxies.client(request.remote, request.headers.getall("X-Forwarded-For", ()))
