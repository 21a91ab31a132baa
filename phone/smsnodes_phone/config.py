"""The agent's settings: command-line flags over a small TOML file over defaults.

The password never comes from the file or from argv alone: ``--password-stdin`` reads one
line from standard input, or the environment variable ``SMSNODES_PHONE_PASSWORD`` holds it.
Without either the agent logs in with the token saved by an earlier run, and without that
too it refuses to start.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSWORD_ENV = "SMSNODES_PHONE_PASSWORD"  # noqa: S105 - the variable's name
RADIOS = ("termux", "modem", "sim")

# key -> (type, default); the names of the TOML file and of the flags (with - for _).
FIELDS: dict[str, tuple[type, Any]] = {
    "url": (str, None),
    "username": (str, None),
    "radio": (str, None),
    "state_dir": (str, None),
    "poll_interval": (float, None),  # None: the radio's own default
    "telemetry_interval": (float, 60.0),
    "backoff_initial": (float, 1.0),
    "backoff_max": (float, 60.0),
    "modem": (str, "any"),
    "sent_delay": (float, 0.5),
    "delivered_delay": (float, 1.0),
    "fail_rate": (float, 0.0),
    "seed": (int, None),
}


class ConfigError(Exception):
    """Bad or missing settings: the agent exits with code 2 and this text."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    url: str
    username: str
    radio: str
    state_dir: Path
    password: str | None = field(default=None, repr=False)
    poll_interval: float | None = None
    telemetry_interval: float = 60.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    modem: str = "any"
    sent_delay: float = 0.5
    delivered_delay: float = 1.0
    fail_rate: float = 0.0
    seed: int | None = None

    @property
    def token_path(self) -> Path:
        return self.state_dir / "token"

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.json"


def default_state_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "smsnodes-phone"


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if "password" in data:
        raise ConfigError(
            f"config file {path}: a password does not belong in a file; "
            f"use --password-stdin or {PASSWORD_ENV}"
        )
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def _coerce(name: str, value: Any) -> Any:
    kind, _ = FIELDS[name]
    if value is None:
        return None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}")


def build(
    file_values: Mapping[str, Any],
    flag_values: Mapping[str, Any],
    password: str | None,
    environ: Mapping[str, str],
) -> AgentConfig:
    """Merge flags over the file over defaults, and check the result."""
    merged: dict[str, Any] = {}
    for name, (_, default) in FIELDS.items():
        value = flag_values.get(name)
        if value is None:
            value = file_values.get(name, default)
        merged[name] = _coerce(name, value)
    for required in ("url", "username", "radio"):
        if not merged[required]:
            flag = required.replace("_", "-")
            raise ConfigError(f"--{flag} is required (or `{required} = ...` in the config file)")
    url = str(merged["url"])
    if not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"--url must be a ws:// or wss:// URL, got {url!r}")
    if merged["radio"] not in RADIOS:
        raise ConfigError(f"--radio must be one of {', '.join(RADIOS)}, got {merged['radio']!r}")
    for name in ("poll_interval", "telemetry_interval", "backoff_initial", "backoff_max"):
        if merged[name] is not None and merged[name] <= 0:
            raise ConfigError(f"{name} must be > 0")
    if merged["backoff_max"] < merged["backoff_initial"]:
        raise ConfigError("backoff_max must be >= backoff_initial")
    for name in ("sent_delay", "delivered_delay"):
        if merged[name] < 0:
            raise ConfigError(f"{name} must be >= 0")
    if not 0.0 <= merged["fail_rate"] <= 1.0:
        raise ConfigError("fail_rate must be within [0, 1]")
    state_dir = Path(os.path.expanduser(merged.pop("state_dir") or default_state_dir(environ)))
    if password is None and not (state_dir / "token").is_file():
        raise ConfigError(
            f"no password: pass --password-stdin or set {PASSWORD_ENV} "
            f"(needed until a session token is saved in {state_dir / 'token'})"
        )
    return AgentConfig(state_dir=state_dir, password=password, **merged)
