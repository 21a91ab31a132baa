"""``smsnodes-phone``: run one gateway phone against a hub.

    echo "$PASSWORD" | smsnodes-phone --url ws://hub:3000/ws/device \\
        --username shop-phone-1 --radio termux --password-stdin

Exit codes: 0 stopped by SIGINT/SIGTERM; 1 the hub refused this phone for good (wrong
password, token refused with no password, replaced by another connection of the same
phone); 2 bad settings or no password.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from . import __version__
from .config import FIELDS, PASSWORD_ENV, RADIOS, AgentConfig, ConfigError, build, read_toml
from .errors import PhoneError
from .gateway import Gateway
from .radio.base import Radio
from .radio.modem import ModemRadio
from .radio.sim import PhoneBehaviour, SimRadio
from .radio.termux import TermuxRadio
from .state import AgentState, read_token

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsnodes-phone",
        description="SMS gateway agent for smsnodes-hub (device protocol v1).",
        epilog=f"The password comes from --password-stdin or ${PASSWORD_ENV}, never argv.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, help="TOML file with the settings below")
    parser.add_argument("--url", help="hub WebSocket URL, e.g. ws://hub:3000/ws/device")
    parser.add_argument("--username", help="the phone's device account name")
    parser.add_argument("--radio", choices=RADIOS, help="what sends the SMS")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    parser.add_argument(
        "--state-dir", help="where the token and state files live "
        "(default $XDG_STATE_HOME/smsnodes-phone or ~/.local/state/smsnodes-phone)"
    )
    parser.add_argument("--poll-interval", type=float, metavar="S",
                        help="seconds between checks for received SMS and receipts")
    parser.add_argument("--telemetry-interval", type=float, metavar="S")
    parser.add_argument("--backoff-initial", type=float, metavar="S")
    parser.add_argument("--backoff-max", type=float, metavar="S")
    parser.add_argument("--modem", help="mmcli's -m argument (default: any)")
    sim = parser.add_argument_group("--radio sim")
    sim.add_argument("--sent-delay", type=float, metavar="S")
    sim.add_argument("--delivered-delay", type=float, metavar="S")
    sim.add_argument("--fail-rate", type=float, metavar="F")
    sim.add_argument("--seed", type=int)
    parser.add_argument("-q", "--quiet", action="store_true", help="log nothing but errors")
    return parser


def _read_password(from_stdin: bool, stdin: TextIO) -> str | None:
    if from_stdin:
        line = getpass.getpass("Password: ") if stdin.isatty() else stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise ConfigError("--password-stdin: standard input gave an empty password")
        return password
    # Taken out of the environment, so the radio's tools never inherit it.
    password = os.environ.pop(PASSWORD_ENV, "")
    return password or None


def load(argv: Sequence[str] | None, stdin: TextIO) -> tuple[AgentConfig, bool]:
    args = _parser().parse_args(argv)
    file_values = read_toml(args.config) if args.config else {}
    flags = {name: getattr(args, name, None) for name in FIELDS}
    password = _read_password(args.password_stdin, stdin)
    return build(file_values, flags, password, os.environ), bool(args.quiet)


def make_radio(config: AgentConfig) -> Radio:
    radio: Radio
    if config.radio == "termux":
        radio = TermuxRadio()
    elif config.radio == "modem":
        radio = ModemRadio(config.modem)
    else:
        radio = SimRadio(PhoneBehaviour(
            sent_delay=config.sent_delay, delivered_delay=config.delivered_delay,
            fail_rate=config.fail_rate, seed=config.seed))
    if config.poll_interval is not None:
        radio.poll_interval = config.poll_interval
    return radio


def _logger(quiet: bool) -> Callable[[str], None]:
    def emit(text: str) -> None:
        if quiet and not text.startswith(("radio:", "not reconnecting", "crashed")):
            return
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} smsnodes-phone: {text}", file=sys.stderr, flush=True)

    return emit


async def run(config: AgentConfig, quiet: bool = False) -> int:
    log = _logger(quiet)
    try:
        state = AgentState(config.state_path)
    except (OSError, ValueError) as exc:
        print(f"smsnodes-phone: cannot read {config.state_path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    radio = make_radio(config)
    info = await radio.device_info()
    gateway = Gateway(
        config.url, config.username, config.password, radio, state,
        token_path=config.token_path, telemetry_interval=config.telemetry_interval,
        device_info={"model": info.model, "app": f"smsnodes-phone {config.radio}",
                     "sims": info.sims, **info.extra},
        token=read_token(config.token_path), on_event=log,
        backoff_initial=config.backoff_initial, backoff_max=config.backoff_max,
        retry_first=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log(f"{config.radio} radio; connecting to {config.url} as {config.username}")
    stopper = asyncio.ensure_future(stop.wait())
    try:
        starting = asyncio.ensure_future(gateway.start())
        await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, PhoneError):
                await starting
            return EXIT_OK
        try:
            starting.result()
        except PhoneError as exc:
            print(f"smsnodes-phone: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        ended = asyncio.ensure_future(gateway.wait_stopped())
        await asyncio.wait({ended, stopper}, return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        if stop.is_set():
            return EXIT_OK
        print("smsnodes-phone: the hub ended this phone's session for good", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        stopper.cancel()
        await gateway.stop()
        log("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config, quiet = load(argv, sys.stdin)
    except ConfigError as exc:
        print(f"smsnodes-phone: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    try:
        return asyncio.run(run(config, quiet))
    except KeyboardInterrupt:
        return EXIT_OK
