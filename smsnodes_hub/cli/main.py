"""Command line: `smsnodes-hub serve | migrate | account ... | device ... | token ... |
webhook ...`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from smsnodes_hub import __version__, db
from smsnodes_hub.auth import accounts
from smsnodes_hub.cli import accounts as account_commands
from smsnodes_hub.cli import devices, operators, serve, tokens, webhooks
from smsnodes_hub.cli.common import EXIT_CONFIG, CliError, UsageError, fail, settings_for
from smsnodes_hub.config import ConfigError
from smsnodes_hub.keyfile import KeyFileError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        settings = settings_for(args)
    except ConfigError as exc:
        fail(exc)
        return EXIT_CONFIG
    logging.basicConfig(
        level=settings.logging.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args, settings) or 0)
    except UsageError as exc:
        fail(exc)
        return EXIT_CONFIG
    except (CliError, accounts.AccountError, db.DatabaseUnavailable, KeyFileError) as exc:
        fail(exc)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsnodes-hub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"smsnodes-hub {__version__}")
    parser.add_argument(
        "--config", type=Path, default=None,
        help="settings file (default: $SMSNODES_CONFIG, else ./config.toml if present)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (serve, account_commands, devices, tokens, webhooks, operators):
        group.add_commands(commands)
    return parser
