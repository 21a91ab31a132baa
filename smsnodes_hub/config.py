"""Settings: defaults, then config.toml, then environment variables.

Every key `section.key` can be overridden by the environment variable
`SMSNODES_SECTION_KEY` (upper case), and `DATABASE_URL` overrides
`database.url` as users of PostgreSQL tools expect. Values are validated once,
at start, and a bad one stops the start with a message naming the key.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import phonenumbers

ENV_PREFIX = "SMSNODES_"


class ConfigError(Exception):
    """A setting is missing, of the wrong type or out of range; the message names the key."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "0.0.0.0"  # noqa: S104 - phones on the LAN must reach the hub
    port: int = 3000
    tls_cert: str = ""
    tls_key: str = ""
    shutdown_timeout: float = 10.0
    # Reverse proxies whose X-Forwarded-For is believed (addresses or CIDR networks).
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = ""
    data_dir: str = "var"
    pool_min: int = 2
    pool_max: int = 10
    command_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    argon2_memory_kib: int = 65536
    argon2_iterations: int = 3
    argon2_lanes: int = 4
    kdf_concurrency: int = 0  # 0: one per core
    credential_cache_seconds: int = 300
    login_max_failures: int = 5
    login_max_failures_per_username: int = 50
    login_lockout_seconds: int = 60


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    heartbeat: int = 30
    window: int = 100
    ack_timeout: float = 30.0
    auth_timeout: float = 10.0
    outbox_size: int = 256


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_attempts: int = 3
    retry_backoff: float = 30.0
    retry_backoff_max: float = 900.0


@dataclass(frozen=True, slots=True)
class MessagingSettings:
    default_region: str = ""  # empty: numbers without + are refused (short codes aside)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    allow_http: bool = False
    allow_private: bool = False
    timeout: float = 10.0
    retry_for_hours: float = 72.0
    retry_backoff: float = 10.0
    retry_backoff_max: float = 3600.0
    disable_after_hours: float = 72.0
    offline_grace: float = 60.0
    concurrency: int = 8
    ca_file: str = ""  # PEM: CAs trusted for receivers besides the system's (a private CA)
    secret_key: str = ""  # empty: a random key in database.data_dir, made on first use


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    send_per_minute: int = 600


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    session_lifetime_hours: float = 12.0
    session_secret: str = ""  # empty: a random key in database.data_dir, made on first use
    metrics_token: str = ""  # empty: /metrics answers without a token
    refresh_seconds: int = 5
    public_origin: str = ""  # empty: forms must come from the Host the request names


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    device: DeviceSettings = field(default_factory=DeviceSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    messaging: MessagingSettings = field(default_factory=MessagingSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    @property
    def tls(self) -> bool:
        return bool(self.server.tls_cert)


# Range checks per key; a key not listed here only has its type checked.
_Check = Callable[[Any], str | None]


def _between(low: float, high: float) -> _Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}"

    return check


def _one_of(*choices: str) -> _Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _empty_or_long(minimum: int) -> _Check:
    def check(value: Any) -> str | None:
        if value == "" or len(value) >= minimum:
            return None
        return f"must be empty or at least {minimum} characters"

    return check


# What a browser sends as Origin: a scheme, a host and maybe a port, nothing more.
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?/?")


def _origin(value: Any) -> str | None:
    match = _ORIGIN.fullmatch(value)
    if value == "" or (match and int(match.group(2) or 0) <= 65535):
        return None
    return "must be empty or an origin such as https://sms.example.org (no path)"


def _networks(value: Any) -> str | None:
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"must list IP addresses or networks such as 10.0.0.0/8 ({entry!r} is not)"
    return None


def _region(value: Any) -> str | None:
    if value == "" or value in phonenumbers.SUPPORTED_REGIONS:
        return None
    return ("must be empty or a region code as libphonenumber knows it, in capitals, such "
            "as NL, DE, GB or US")


def _database_url(value: Any) -> str | None:
    if value == "" or value.startswith(("postgresql://", "postgres://")):
        return None
    return "must be empty (embedded PostgreSQL) or a postgresql:// URL"


_CHECKS: dict[str, _Check] = {
    "database.url": _database_url,
    "server.port": _between(0, 65535),
    "server.shutdown_timeout": _between(0, 300),
    "database.pool_min": _between(1, 1000),
    "database.pool_max": _between(1, 1000),
    "database.command_timeout": _between(0.1, 3600),
    "security.argon2_memory_kib": _between(8, 4 * 1024 * 1024),
    "security.argon2_iterations": _between(1, 100),
    "security.argon2_lanes": _between(1, 64),
    "security.kdf_concurrency": _between(0, 64),
    "security.credential_cache_seconds": _between(0, 86400),
    "security.login_max_failures": _between(1, 1000),
    "security.login_max_failures_per_username": _between(1, 100000),
    "server.trusted_proxies": _networks,
    "security.login_lockout_seconds": _between(1, 86400),
    "device.heartbeat": _between(1, 3600),
    "device.window": _between(1, 1000),
    "device.ack_timeout": _between(0.05, 86400),
    "device.auth_timeout": _between(0.05, 600),
    "device.outbox_size": _between(8, 100000),
    "delivery.max_attempts": _between(1, 20),
    "messaging.default_region": _region,
    "webhooks.timeout": _between(0.1, 60),
    "webhooks.retry_for_hours": _between(0.0001, 24 * 30),
    "webhooks.retry_backoff": _between(0.01, 86400),
    "webhooks.retry_backoff_max": _between(0.01, 86400),
    "webhooks.disable_after_hours": _between(0.0001, 24 * 30),
    "webhooks.offline_grace": _between(0, 86400),
    "webhooks.concurrency": _between(1, 256),
    "delivery.retry_backoff": _between(0.01, 86400),
    "delivery.retry_backoff_max": _between(0.01, 86400),
    "limits.send_per_minute": _between(0, 10_000_000),
    "dashboard.session_lifetime_hours": _between(0.05, 24 * 90),
    # Guessable secrets would make the cookie signature, the scrape token and the seal on
    # webhook secrets decoration.
    "dashboard.session_secret": _empty_or_long(32),
    "webhooks.secret_key": _empty_or_long(32),
    "dashboard.metrics_token": _empty_or_long(16),
    "dashboard.refresh_seconds": _between(1, 3600),
    "dashboard.public_origin": _origin,
    "logging.level": _one_of("debug", "info", "warning", "error"),
}


# Values never repeated in an error message: a database URL may hold a password, and the
# dashboard's and the webhooks' keys are secrets themselves.
_SECRET_KEYS = {"database.url", "dashboard.session_secret", "dashboard.metrics_token",
                "webhooks.secret_key"}


def _shown(key: str, raw: Any) -> str:
    return "value not shown" if key in _SECRET_KEYS else f"got {raw!r}"


def _coerce(key: str, kind: type, raw: Any, from_env: bool) -> Any:
    """Turn a TOML or environment value into the key's type, or raise ConfigError."""
    shown = _shown(key, raw)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if from_env and isinstance(raw, str) and raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if from_env and isinstance(raw, str) and raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"config: {key}: must be true or false ({shown})")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if from_env and isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ConfigError(f"config: {key}: must be a whole number ({shown})")
    if kind is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if from_env and isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                pass
        raise ConfigError(f"config: {key}: must be a number ({shown})")
    if kind is tuple:
        # A TOML array of strings, or in the environment one comma-separated string.
        items = raw.split(",") if from_env and isinstance(raw, str) else raw
        if isinstance(items, list) and all(isinstance(item, str) for item in items):
            return tuple(item.strip() for item in items if item.strip())
        raise ConfigError(f"config: {key}: must be a list of strings ({shown})")
    if isinstance(raw, str):
        return raw
    raise ConfigError(f"config: {key}: must be a string ({shown})")


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple[str, ...]": tuple}


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `path` (optional; a missing default file is fine) and apply `environ` on top."""
    environ = {} if environ is None else environ
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                file_values = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config: file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None

    sections: dict[str, Any] = {}
    known_sections = {f.name: f for f in fields(Settings)}
    for name in file_values:
        if name not in known_sections:
            raise ConfigError(f"config: unknown section [{name}]")
    for name, section_field in known_sections.items():
        section_cls: Any = section_field.default_factory  # each section is a dataclass
        from_file = file_values.get(name, {})
        if not isinstance(from_file, dict):
            raise ConfigError(f"config: {name}: must be a table [{name}]")
        known_keys = {f.name: f for f in fields(section_cls)}
        for key in from_file:
            if key not in known_keys:
                raise ConfigError(f"config: unknown key {name}.{key}")
        values: dict[str, Any] = {}
        for key, key_field in known_keys.items():
            dotted = f"{name}.{key}"
            kind = _TYPES[key_field.type] if isinstance(key_field.type, str) else key_field.type
            env_name = f"{ENV_PREFIX}{name}_{key}".upper()
            if dotted == "database.url" and environ.get("DATABASE_URL"):
                raw, from_env = environ["DATABASE_URL"], True
            elif env_name in environ:
                raw, from_env = environ[env_name], True
            elif key in from_file:
                raw, from_env = from_file[key], False
            else:
                continue
            value = _coerce(dotted, kind, raw, from_env)
            check = _CHECKS.get(dotted)
            problem = check(value) if check else None
            if problem:
                raise ConfigError(f"config: {dotted}: {problem} ({_shown(dotted, raw)})")
            values[key] = value
        sections[name] = section_cls(**values)

    settings = Settings(**sections)
    _check_combinations(settings)
    return settings


def _check_combinations(settings: Settings) -> None:
    if settings.database.pool_min > settings.database.pool_max:
        raise ConfigError("config: database.pool_min: must not exceed database.pool_max")
    # A claim pushes up to a whole window at once, and a withdrawal as many cancels: an
    # outbox that cannot hold both (and a ping) would drop a phone that reads fine as a
    # slow consumer.
    device = settings.device
    if device.outbox_size < 2 * device.window + 8:
        raise ConfigError(
            f"config: device.outbox_size: must be at least 2 x device.window + 8 "
            f"({2 * device.window + 8} for a window of {device.window}, got "
            f"{device.outbox_size})")
    if bool(settings.server.tls_cert) != bool(settings.server.tls_key):
        raise ConfigError("config: server.tls_cert: tls_cert and tls_key must be set together")
    for key in ("tls_cert", "tls_key"):
        value = getattr(settings.server, key)
        if value and not Path(value).is_file():
            raise ConfigError(f"config: server.{key}: file not found: {value}")
    _check_ca_file(settings.webhooks.ca_file)
    if settings.delivery.retry_backoff_max < settings.delivery.retry_backoff:
        raise ConfigError(
            "config: delivery.retry_backoff_max: must not be less than delivery.retry_backoff"
        )
    if settings.webhooks.retry_backoff_max < settings.webhooks.retry_backoff:
        raise ConfigError(
            "config: webhooks.retry_backoff_max: must not be less than webhooks.retry_backoff"
        )
    lanes = settings.security.argon2_lanes
    if settings.security.argon2_memory_kib < 8 * lanes:
        raise ConfigError(
            "config: security.argon2_memory_kib: must be at least 8 x security.argon2_lanes"
        )


def _check_ca_file(path: str) -> None:
    """webhooks.ca_file must hold PEM certificates, so that a typo or a key file in its
    place stops the start rather than every delivery."""
    if not path:
        return
    if not Path(path).is_file():
        raise ConfigError(f"config: webhooks.ca_file: file not found: {path}")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, ValueError, OSError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ConfigError(
            f"config: webhooks.ca_file: {path} holds no PEM certificate ({reason})"
        ) from None
