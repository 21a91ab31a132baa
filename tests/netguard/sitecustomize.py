"""Tests never leave the machine: every connect (and UDP send, and name lookup) to anything
but loopback (127.0.0.0/8, ::1) or a Unix socket is refused before any packet goes out.

tests/conftest.py installs this in the pytest process, and puts this folder first on
PYTHONPATH with TESTS_NETGUARD_LOG set, so that Python subprocesses the tests start (`serve`,
the CLI, the phone agent, scripts) import it as their `sitecustomize` and install it too.
Every refusal is raised where it happens (an OSError, which code under test may well catch)
and also written down, in this process or in the TESTS_NETGUARD_LOG file, so that the test
during which it happened fails anyway (tests/conftest.py checks after each test).

Covered: socket.socket.connect/connect_ex (which asyncio's selector loop and every
Python-level client use: asyncpg, aiohttp, urllib, smtplib...), sendto, and getaddrinfo of a
name other than localhost (a DNS query would leave the machine; names under the reserved
.example, .invalid and .test fail to resolve, as they would anywhere, and are not refusals).
Not covered: programs that are not Python (PostgreSQL itself, which listens on a Unix socket
only; Chromium under Playwright), and C code that opens sockets on its own (uvloop, so
subprocesses are kept on asyncio's own loop).

Self-contained: as a `sitecustomize` it runs before anything else is importable."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
from typing import Any

LOG_ENV = "TESTS_NETGUARD_LOG"
LOCAL_NAMES = {"localhost", "localhost.", "ip6-localhost", "ip6-loopback"}
RESERVED_TLDS = {"example", "invalid", "test"}

_lock = threading.Lock()
refused: list[str] = []  # refusals not written to the log file (none set, or unwritable)
_installed = False


class NetworkGuardError(ConnectionRefusedError):
    """A test tried to reach beyond loopback."""


def allowed(family: int, address: Any) -> bool:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True  # Unix sockets (PostgreSQL), netlink: never off the machine
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in LOCAL_NAMES:
        return True
    ip = _numeric(host)
    if ip is None:
        return False  # a name: connect() would resolve it, maybe through DNS
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _numeric(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host written as numbers stands for, also in the legacy forms the C
    library reads without any look-up ("0x7f.0.0.1", "2130706433"); None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _reserved(name: str) -> bool:
    """A name under a top-level domain reserved never to exist (RFC 2606, RFC 6761), as
    documentation and tests use: it fails to resolve here as it would anywhere, without the
    DNS query."""
    return name.lower().rstrip(".").rsplit(".", 1)[-1] in RESERVED_TLDS


def _refuse(what: str) -> NetworkGuardError:
    message = f"network guard: {what} refused: tests stay on loopback (pid {os.getpid()})"
    path = os.environ.get(LOG_ENV)
    with _lock:
        if path:  # one file for the test process and its subprocesses alike
            try:
                with open(path, "a", encoding="utf-8") as log:
                    log.write(message + "\n")
            except OSError:
                refused.append(message)
        else:
            refused.append(message)
    return NetworkGuardError(message)


def take_refusals() -> list[str]:
    """The refusals recorded since the last call, from this process and its subprocesses."""
    path = os.environ.get(LOG_ENV)
    with _lock:
        found = list(refused)
        refused.clear()
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as log:
                found += [line.rstrip("\n") for line in log if line.strip()]
            with open(path, "w", encoding="utf-8"):
                pass
    return found


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if not allowed(self.family, address):
            raise _refuse(f"connect to {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(self.family, address):
            raise _refuse(f"connect to {address!r}")
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        if args and not allowed(self.family, args[-1]):
            raise _refuse(f"sendto {args[-1]!r}")
        return real_sendto(self, data, *args)  # type: ignore[call-overload, no-any-return]

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        # None and "" are the wildcard (binding), not a look-up.
        if name and not allowed(socket.AF_INET, (name, 0)) and _numeric(str(name)) is None:
            # A name to look up. Reserved ones get the answer the world would give; any other
            # is refused like a connect, with the error a resolver gives.
            if not _reserved(str(name)):
                _refuse(f"looking up {name!r}")
            raise socket.gaierror(socket.EAI_NONAME, "network guard: not resolved in tests")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = getaddrinfo
    # uvloop connects in C, out of sight: subprocesses stay on asyncio's loop (import fails).
    sys.modules.setdefault("uvloop", None)  # type: ignore[arg-type]


if os.environ.get(LOG_ENV) and __name__ == "sitecustomize":
    install()
