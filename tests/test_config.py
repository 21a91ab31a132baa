"""Settings: defaults, config.toml, environment overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsnodes_hub.config import ConfigError, Settings, load_settings
from tests.cli.test_cli import cli_env, run_cli
from tests.support import ROOT


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load() -> None:
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.server.port == 3000 and settings.server.host == "0.0.0.0"  # noqa: S104
    assert settings.database.url == "" and settings.database.data_dir == "var"
    assert settings.device.window == 100 and settings.device.heartbeat == 30
    assert settings.logging.level == "info"
    assert settings.tls is False


def test_shipped_config_file_matches_the_defaults() -> None:
    # config.toml documents the defaults; it must load and say the same thing.
    assert load_settings(ROOT / "config.toml", {}) == Settings()


def test_file_values_apply(tmp_path: Path) -> None:
    path = write(tmp_path, """
[server]
port = 3100
host = "127.0.0.1"
[database]
url = "postgresql://hub@db.example/smsnodes"
pool_max = 4
command_timeout = 3
[device]
window = 3
ack_timeout = 1.5
[logging]
level = "debug"
""")
    settings = load_settings(path, {})
    assert settings.server.port == 3100 and settings.server.host == "127.0.0.1"
    assert settings.database.url == "postgresql://hub@db.example/smsnodes"
    assert settings.database.pool_max == 4
    assert settings.database.command_timeout == 3.0
    assert isinstance(settings.database.command_timeout, float)
    assert settings.device.window == 3 and settings.device.ack_timeout == 1.5
    assert settings.logging.level == "debug"
    assert settings.device.heartbeat == 30  # untouched keys keep their defaults


def test_environment_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 3100\n[device]\nwindow = 3\n")
    settings = load_settings(path, {"SMSNODES_SERVER_PORT": "3200"})
    assert settings.server.port == 3200
    assert settings.device.window == 3
    assert load_settings(None, {"SMSNODES_DEVICE_ACK_TIMEOUT": " 2.5 "}).device.ack_timeout == 2.5


def test_database_url_beats_the_file_and_its_own_variable(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "postgresql://file@h/db"\n')
    assert load_settings(path, {}).database.url == "postgresql://file@h/db"
    env = {"DATABASE_URL": "postgresql://env@h/db",
           "SMSNODES_DATABASE_URL": "postgresql://prefixed@h/db"}
    assert load_settings(path, env).database.url == "postgresql://env@h/db"
    # An empty DATABASE_URL is the same as none.
    assert load_settings(path, {"DATABASE_URL": ""}).database.url == "postgresql://file@h/db"


@pytest.mark.parametrize(("text", "named"), [
    ("[server]\nprot = 3000\n", "server.prot"),
    ("[serve]\nport = 3000\n", "[serve]"),
    ("port = 3000\n", "[port]"),
    ("[server]\nport = 3000\n[server.extra]\nx = 1\n", "server.extra"),
])
def test_unknown_key_or_section_is_rejected(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match="unknown") as caught:
        load_settings(write(tmp_path, text), {})
    assert named in str(caught.value)


@pytest.mark.parametrize(("env", "key"), [
    ({"SMSNODES_SERVER_PORT": "abc"}, "server.port"),
    ({"SMSNODES_SERVER_PORT": "70000"}, "server.port"),
    ({"SMSNODES_SERVER_PORT": "-1"}, "server.port"),
    ({"SMSNODES_SERVER_PORT": ""}, "server.port"),
    ({"SMSNODES_DEVICE_WINDOW": "0"}, "device.window"),
    ({"SMSNODES_DEVICE_WINDOW": "2.5"}, "device.window"),
    ({"SMSNODES_DEVICE_ACK_TIMEOUT": "soon"}, "device.ack_timeout"),
    ({"SMSNODES_LOGGING_LEVEL": "loud"}, "logging.level"),
    ({"SMSNODES_DATABASE_POOL_MIN": "6", "SMSNODES_DATABASE_POOL_MAX": "5"},
     "database.pool_min"),
    ({"SMSNODES_SERVER_TLS_CERT": "cert.pem"}, "server.tls_cert"),
    ({"SMSNODES_SERVER_TLS_KEY": "key.pem"}, "server.tls_cert"),
    ({"SMSNODES_SECURITY_ARGON2_LANES": "4", "SMSNODES_SECURITY_ARGON2_MEMORY_KIB": "16"},
     "security.argon2_memory_kib"),
    ({"DATABASE_URL": "mysql://root:hunter2@db/x"}, "database.url"),
    ({"SMSNODES_WEBHOOKS_SECRET_KEY": "hunter2 is too short"}, "webhooks.secret_key"),
    ({"SMSNODES_MESSAGING_DEFAULT_REGION": "nl"}, "messaging.default_region"),
    ({"SMSNODES_MESSAGING_DEFAULT_REGION": "Netherlands"}, "messaging.default_region"),
    ({"SMSNODES_MESSAGING_DEFAULT_REGION": "ZZ"}, "messaging.default_region"),
])
def test_invalid_environment_value_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env)
    assert key in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(("text", "key"), [
    ('[server]\nport = "abc"\n', "server.port"),
    ("[server]\nport = 70000\n", "server.port"),
    ("[server]\nport = 3000.0\n", "server.port"),
    ("[server]\nport = true\n", "server.port"),
    ("[device]\nwindow = 0\n", "device.window"),
    ('[logging]\nlevel = "loud"\n', "logging.level"),
    ("[logging]\nlevel = 3\n", "logging.level"),
    ("[database]\npool_min = 20\npool_max = 10\n", "database.pool_min"),
    ('[server]\ntls_cert = "cert.pem"\n', "server.tls_cert"),
    ("[server]\nhost = [1]\n", "server.host"),
    ("[device]\nack_timeout = 0\n", "device.ack_timeout"),
    # A full window pushed at once would overflow the outbox: every phone dropped as slow.
    ("[device]\nwindow = 200\n", "device.outbox_size"),
    ("[device]\nwindow = 10\noutbox_size = 27\n", "device.outbox_size"),
])
def test_invalid_file_value_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), {})
    assert key in str(caught.value)


def test_tls_files_must_exist_and_come_as_a_pair(tmp_path: Path) -> None:
    cert, key = write(tmp_path, "cert", "cert.pem"), write(tmp_path, "key", "key.pem")
    settings = load_settings(None, {"SMSNODES_SERVER_TLS_CERT": str(cert),
                                    "SMSNODES_SERVER_TLS_KEY": str(key)})
    assert settings.tls is True
    with pytest.raises(ConfigError, match=r"server\.tls_key"):
        load_settings(None, {"SMSNODES_SERVER_TLS_CERT": str(cert),
                             "SMSNODES_SERVER_TLS_KEY": str(tmp_path / "missing.pem")})


def test_file_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", {})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[server\nport = 1\n"), {})


def test_database_url_value_is_never_repeated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"database\.url") as caught:
        load_settings(write(tmp_path, '[database]\nurl = "http://u:hunter2@h/db"\n'), {})
    assert "hunter2" not in str(caught.value)


# -- Through the command line -----------------------------------------------------------------


async def _config_failure(tmp_path: Path, *args: str, **env: str) -> str:
    run = await run_cli(*args, cwd=tmp_path, env=cli_env(**env))
    assert run.code == 2, run
    assert "Traceback" not in run.err
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert run.out == ""
    return lines[0]


async def test_cli_rejects_a_bad_config_file_with_exit_2(tmp_path: Path) -> None:
    write(tmp_path, "[device]\nwindow = 0\n", "bad.toml")
    line = await _config_failure(tmp_path, "--config", "bad.toml", "migrate")
    assert "device.window" in line


async def test_cli_rejects_a_bad_environment_value_with_exit_2(tmp_path: Path) -> None:
    line = await _config_failure(tmp_path, "migrate", SMSNODES_DEVICE_WINDOW="zero")
    assert "device.window" in line and "zero" in line


async def test_cli_reads_config_toml_from_the_working_directory(tmp_path: Path) -> None:
    # No --config: ./config.toml is used, and SMSNODES_CONFIG takes precedence over it.
    write(tmp_path, "[logging]\nlevel = \"loud\"\n")
    assert "logging.level" in await _config_failure(tmp_path, "device", "list")
    write(tmp_path, "[server]\nport = 99999\n", "other.toml")
    line = await _config_failure(tmp_path, "device", "list", SMSNODES_CONFIG="other.toml")
    assert "server.port" in line


def test_trusted_proxies_are_a_list_of_networks(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]\n')
    assert load_settings(path, {}).server.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")
    env = {"SMSNODES_SERVER_TRUSTED_PROXIES": " 192.0.2.1 , 2001:db8::/32,"}
    assert load_settings(path, env).server.trusted_proxies == ("192.0.2.1", "2001:db8::/32")
    assert load_settings(None, {"SMSNODES_SERVER_TRUSTED_PROXIES": ""}).server.trusted_proxies \
        == ()
    for bad in ('"10.0.0.1"', '["proxy.lan"]', "[1]"):
        with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
            load_settings(write(tmp_path, f"[server]\ntrusted_proxies = {bad}\n"), {})
    with pytest.raises(ConfigError, match=r"10\.0\.0\.300"):
        load_settings(None, {"SMSNODES_SERVER_TRUSTED_PROXIES": "10.0.0.300"})
