from device_sim import SimulatedPhone

from tests.support import PASSWORD, add_device, ws_url


async def test_send_reaches_connected_phone(hub):
    await add_device(hub, "phone-a")
    async with SimulatedPhone(ws_url(hub), "phone-a", PASSWORD) as phone:
        resp = await hub.post("/api/send-sms", json={
            "deviceUsername": "phone-a", "password": PASSWORD,
            "phoneNumbers": ["+1234567890"], "message": "hello", "priority": 2})
        body = await resp.json()
        assert resp.status == 200, body
        assert body["sentImmediately"] is True
        [sms] = await phone.wait_for_sms(1)
        assert sms["message"] == "hello"
