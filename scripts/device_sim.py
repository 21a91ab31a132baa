#!/usr/bin/env python3
"""Simulated Android gateway phone(s) speaking the smsnodes-hub device protocol v1.

The phone itself lives in the agent's package (smsnodes_phone.simulated, in phone/),
beside the real gateway agent ``smsnodes-phone``; this script keeps the names that tests
and benchmarks import and a command line for running many simulated phones at once. It
behaves as a careful phone app would: password login first, token login on every
reconnect, acks keyed by (id, attempt), per-recipient status reports kept in an outbox
until the hub answers ``ok``, and exponential backoff with full jitter between reconnects.

Try the hub without a phone (prefer --password-stdin: argv is visible to other users)::

    echo 'correct horse' | python scripts/device_sim.py \\
        --url ws://127.0.0.1:3000/ws/device --username shop-phone-1 --password-stdin
    python scripts/device_sim.py --username bench --password pw --count 50 --fail-rate 0.1

(one real-looking phone with a state file and a token file: ``smsnodes-phone --radio sim``)

From tests or benchmarks::

    sys.path.insert(0, "scripts")
    from device_sim import PhoneBehaviour, SimulatedPhone

    async with SimulatedPhone(url, "shop-phone-1", "pw", PhoneBehaviour(seed=1)) as phone:
        [sms] = await phone.wait_for_sms(1)
        await phone.wait_for(lambda: phone.outbox_size == 0)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

try:
    import smsnodes_phone  # noqa: F401  (installed, or run from the repository)
except ModuleNotFoundError:  # python scripts/device_sim.py without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "phone"))

from smsnodes_phone.channel import EventSink
from smsnodes_phone.errors import AuthFailed, PhoneError
from smsnodes_phone.frames import utc_now
from smsnodes_phone.radio.sim import PhoneBehaviour
from smsnodes_phone.simulated import SimulatedPhone

__all__ = ["AuthFailed", "PhoneBehaviour", "PhoneError", "SimulatedPhone", "utc_now"]

DEFAULT_URL = "ws://127.0.0.1:3000/ws/device"


# ---- command line -----------------------------------------------------------------------


def _optional_delay(text: str) -> float | None:
    if text.strip().lower() in {"none", "never", "off"}:
        return None
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0 or 'none'")
    return value


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="device_sim.py",
        description="Simulated Android gateway phone(s) for smsnodes-hub (protocol v1).",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"hub WebSocket URL ({DEFAULT_URL})")
    parser.add_argument("--username", required=True, help="device account name")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument(
        "--password",
        help="account password (visible to other local users; prefer --password-stdin)",
    )
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    parser.add_argument(
        "--count", type=int, default=1, help="run N phones named USERNAME-1..USERNAME-N"
    )
    parser.add_argument(
        "--inbound",
        type=int,
        default=0,
        metavar="N",
        help="after auth, forward N inbound SMS from +15550000000",
    )
    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument("--no-ack", action="store_true", help="never ack sms frames")
    behaviour.add_argument("--ack-delay", type=float, default=0.0, metavar="S")
    behaviour.add_argument(
        "--sent-delay",
        type=_optional_delay,
        default=0.0,
        metavar="S|none",
        help="seconds until 'sent' is reported; none = never",
    )
    behaviour.add_argument(
        "--delivered-delay",
        type=_optional_delay,
        default=0.0,
        metavar="S|none",
        help="seconds after 'sent' until 'delivered'; none = never",
    )
    behaviour.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction of recipients reported failed (0..1)",
    )
    behaviour.add_argument(
        "--no-refs", action="store_true", help="send status reports without ref (no outbox)"
    )
    behaviour.add_argument("--no-reconnect", action="store_true")
    behaviour.add_argument("--backoff-initial", type=float, default=0.5, metavar="S")
    behaviour.add_argument("--backoff-max", type=float, default=30.0, metavar="S")
    behaviour.add_argument(
        "--seed", type=int, default=None, help="random seed (phone i uses SEED+i-1)"
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    if args.inbound < 0:
        parser.error("--inbound must be >= 0")
    try:
        args.behaviour = PhoneBehaviour(
            ack=not args.no_ack,
            ack_delay=args.ack_delay,
            sent_delay=args.sent_delay,
            delivered_delay=args.delivered_delay,
            fail_rate=args.fail_rate,
            use_refs=not args.no_refs,
            reconnect=not args.no_reconnect,
            backoff_initial=args.backoff_initial,
            backoff_max=args.backoff_max,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _read_password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        return str(args.password)
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _printer(name: str) -> EventSink:
    def emit(text: str) -> None:
        print(f"[{name}] {text}", flush=True)

    return emit


async def _wait_all_stopped(phones: list[SimulatedPhone]) -> None:
    for phone in phones:
        await phone.wait_stopped()


async def _amain(args: argparse.Namespace, password: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. Windows
            loop.add_signal_handler(sig, stop.set)

    names = (
        [args.username]
        if args.count == 1
        else [f"{args.username}-{i}" for i in range(1, args.count + 1)]
    )
    base: PhoneBehaviour = args.behaviour
    # limit=0: each upgraded WebSocket holds a connector slot for its whole life.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        phones = [
            SimulatedPhone(
                args.url,
                name,
                password,
                base if base.seed is None else replace(base, seed=base.seed + i),
                session=session,
                on_event=_printer(name),
            )
            for i, name in enumerate(names)
        ]
        stopper = asyncio.ensure_future(stop.wait())
        try:
            starting = asyncio.gather(*(p.start() for p in phones), return_exceptions=True)
            first: set[asyncio.Future[Any]] = {starting, stopper}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return 0
            failed = [exc for exc in starting.result() if exc is not None]
            if failed:
                for exc in failed:
                    print(f"device_sim: {exc}", file=sys.stderr)
                return 1
            for phone in phones:
                for i in range(1, args.inbound + 1):
                    await phone.send_inbound("+15550000000", f"sim inbound {i}")
            all_stopped = asyncio.ensure_future(_wait_all_stopped(phones))
            await asyncio.wait({stopper, all_stopped}, return_when=asyncio.FIRST_COMPLETED)
            all_stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await all_stopped
            if stop.is_set():
                return 0
            print("device_sim: every phone stopped for good", file=sys.stderr)
            return 1
        finally:
            stopper.cancel()
            await asyncio.gather(*(p.stop() for p in phones), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        password = _read_password(args)
        return asyncio.run(_amain(args, password))
    except KeyboardInterrupt:  # at the password prompt, or where signal handlers are missing
        return 0


if __name__ == "__main__":
    sys.exit(main())
