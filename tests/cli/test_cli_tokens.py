"""`smsnodes-hub token ...` and `device pace`: API tokens and pacing from the command line."""

from __future__ import annotations

from smsnodes_hub.appkeys import AUTH
from tests.cli.test_cli import Cli, cli  # noqa: F401 - the fixture
from tests.support import NUMBER, PASSWORD, add_device, ws_url
from tests.wsclient import RawPhone


async def test_token_create_list_revoke_through_the_cli(cli: Cli, hub, pool) -> None:  # noqa: F811
    await add_device(pool, "phone-t")
    run = await cli("token", "create", "phone-t", "--name", "billing", "--password-stdin",
                    stdin=f"{PASSWORD}\n")
    assert run.code == 0, run
    token = run.out.strip().splitlines()[-1]
    assert token.startswith("snh_") and PASSWORD not in run.out + run.err
    resp = await hub.post("/api/send-sms", headers={"Authorization": f"Bearer {token}"},
                          json={"phoneNumbers": [NUMBER], "message": "from a cli token"})
    assert resp.status == 200, await resp.json()

    listing = await cli("token", "list", "phone-t")
    assert listing.code == 0 and "api" in listing.out and "billing" in listing.out
    assert token not in listing.out
    token_id = await pool.fetchval("SELECT id FROM tokens WHERE kind = 'api'")
    revoked = await cli("token", "revoke", "phone-t", str(token_id))
    assert revoked.code == 0, revoked
    hub.app[AUTH].cache.clear()
    resp = await hub.get("/api/tokens", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401

    wrong = await cli("token", "create", "phone-t", "--password-stdin", stdin="nope nope\n")
    assert "wrong device name or password" in wrong.one_error_line()
    assert "no device named" in (await cli("token", "list", "ghost")).one_error_line()
    again = await cli("token", "revoke", "phone-t", str(token_id))
    assert "has no token" in again.one_error_line()


async def test_device_pace_applies_to_the_connected_phone(cli: Cli, hub, pool) -> None:  # noqa: F811
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    run = await cli("device", "pace", "shop-phone-1", "2")
    assert run.code == 0 and "at most 2 SMS per minute" in run.out, run
    await phone.nothing_for(0.3)  # the hub heard it over the bus
    for n in range(3):
        await hub.post("/api/send-sms", json={
            "deviceUsername": "shop-phone-1", "password": PASSWORD,
            "phoneNumbers": [NUMBER], "message": f"m{n}"})
    frames = await phone.recv_sms(2)
    for frame in frames:
        await phone.ack(frame)
    await phone.nothing_for(0.5)
    assert (await cli("device", "pace", "shop-phone-1", "off")).code == 0
    assert len(await phone.recv_sms(1, timeout=3)) == 1
    for bad in ("0x", "-3", "100001", "²"):
        assert "PER_MINUTE" in (await cli("device", "pace", "shop-phone-1", bad)).one_error_line()
    await phone.close()
