"""Receivers over HTTPS with certificates no public CA signed: `webhooks.ca_file` adds CAs
to the system's, on real TLS sockets (certificates made here, with `cryptography`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from device_sim import SimulatedPhone

from smsnodes_hub.config import ConfigError
from tests.support import PASSWORD, add_device, self_signed, test_settings, until, ws_url
from tests.webhooks.receiver import LOCAL, SENDER, deliveries, register, serve_receiver

# https only: these receivers speak nothing else.
PRIVATE = {k: v for k, v in LOCAL.items() if k != "SMSNODES_WEBHOOKS_ALLOW_HTTP"}


async def _attempts(hub: Any, webhook_id: int) -> list[dict[str, Any]]:
    log = await deliveries(hub, webhook_id)
    return log["data"][0]["attempts"] if log["data"] else []


async def test_a_self_signed_receiver_needs_ca_file_and_the_system_cas_still_count(
        make_hub, aiohttp_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Receiver A's self-signed certificate is refused until it is in `webhooks.ca_file`;
    receiver B's CA stands for the system's trust store (OpenSSL's SSL_CERT_FILE) and is
    trusted with and without ca_file: the file adds to that store, it does not replace it."""
    own = self_signed(tmp_path / "a", "receiver A")
    system = self_signed(tmp_path / "b", "receiver B")
    monkeypatch.setenv("SSL_CERT_FILE", str(system.cert))
    a = await serve_receiver(aiohttp_server, own.server_context())
    b = await serve_receiver(aiohttp_server, system.server_context())
    assert a.base.startswith("https://127.0.0.1:")

    hub = await make_hub(**PRIVATE)
    await add_device(hub, "shop-phone-1")
    refused = await register(hub, a, ["sms.received"])
    trusted = await register(hub, b, ["sms.received"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "over TLS")
        [event] = await b.count("/hook", 1)
        attempts = await until(lambda: _attempts(hub, refused["id"]))
    assert event["data"]["message"] == "over TLS"
    assert a.requests == []  # the handshake failed: nothing was sent
    assert attempts[0]["statusCode"] is None
    assert attempts[0]["error"].startswith("TLS: the receiver's certificate is not trusted (")
    assert "webhooks.ca_file" in attempts[0]["error"]
    assert [x["statusCode"] for x in await _attempts(hub, trusted["id"])] == [200]
    await hub.close()

    hub = await make_hub(**PRIVATE, SMSNODES_WEBHOOKS_CA_FILE=str(own.cert))
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        # The delivery that failed is retried and now arrives, as does a new event.
        [retried] = await a.count("/hook", 1)
        await phone.send_inbound(SENDER, "trusted now")
        events = await a.count("/hook", 2)
        assert len(await b.count("/hook", 2)) == 2  # the system's CAs still count
    assert retried["data"]["message"] == "over TLS"
    assert events[1]["data"]["message"] == "trusted now"


def test_ca_file_must_exist_and_hold_certificates(tmp_path: Path) -> None:
    cert = self_signed(tmp_path / "tls")
    settings = test_settings("postgresql://x/y", SMSNODES_WEBHOOKS_CA_FILE=str(cert.cert))
    assert settings.webhooks.ca_file == str(cert.cert)
    for bad, expected in (
            (tmp_path / "missing.pem", f"file not found: {tmp_path / 'missing.pem'}"),
            (cert.key, f"{cert.key} holds no PEM certificate")):
        with pytest.raises(ConfigError) as caught:
            test_settings("postgresql://x/y", SMSNODES_WEBHOOKS_CA_FILE=str(bad))
        assert str(caught.value).startswith(f"config: webhooks.ca_file: {expected}"), caught
