"""Segment counting (GSM 03.38 basic and extension tables; 160/153 and 70/67)."""

from __future__ import annotations

import base64

import pytest

from smsnodes_hub.messaging.segments import GSM7, UCS2, analyze
from tests.support import PASSWORD, add_device, ws_url
from tests.wsclient import RawPhone


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units"),
    [
        ("Hello from SMS Nodes!", GSM7, 1, 21),
        ("a" * 160, GSM7, 1, 160),
        ("a" * 161, GSM7, 2, 161),
        ("a" * 306, GSM7, 2, 306),
        ("a" * 307, GSM7, 3, 307),
        ("€" * 80, GSM7, 1, 160),  # extension characters cost two septets
        ("€" * 81, GSM7, 2, 162),
        ("a" * 152 + "€" + "b" * 10, GSM7, 2, 164),  # the escape pair moves to part two
        ("a" * 152 + "€" * 77, GSM7, 3, 306),
        ("Grüße aus Köln", GSM7, 1, 14),  # ß, ü and ö are in the basic table
        ("ça va", UCS2, 1, 5),  # lower-case ç is not (upper-case Ç is)
        ("Привет", UCS2, 1, 6),
        ("x" * 70 + "й", UCS2, 2, 71),
        ("😀" * 35, UCS2, 1, 70),  # each emoji is a surrogate pair: two units
        ("😀" * 36, UCS2, 2, 72),
        ("a" * 66 + "😀", UCS2, 1, 68),
        ("a" * 66 + "😀" + "b" * 3, UCS2, 2, 71),
        ("", GSM7, 0, 0),
    ],
)
def test_segments(text: str, encoding: str, segments: int, units: int) -> None:
    result = analyze(text)
    assert (result.encoding, result.segments, result.units) == (encoding, segments, units)


THROUGH_THE_SERVER = [
    ("Price: 5€ [net]", GSM7, 1),  # € and [ are extension characters, still GSM-7
    ("{" * 80, GSM7, 1),  # 160 septets: exactly one SMS
    ("{" * 81, GSM7, 2),
    ("a" * 152 + "€" + "b" * 10, GSM7, 2),
    ("Thanks 😀", UCS2, 1),  # an emoji forces UCS-2
    ("😀" * 36, UCS2, 2),
    ("a" * 66 + "😀" + "b" * 3, UCS2, 2),
]


async def test_segments_through_the_real_server(hub):
    """What send-sms answers and the status API shows, for texts a phone receives intact."""
    await add_device(hub, "shop-phone-1")
    auth = "Basic " + base64.b64encode(f"shop-phone-1:{PASSWORD}".encode()).decode()
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    for text, encoding, per_recipient in THROUGH_THE_SERVER:
        resp = await hub.post("/api/send-sms", headers={"Authorization": auth}, json={
            "phoneNumbers": ["+1234567890", "+0987654321"], "message": text})
        answer = await resp.json()
        assert resp.status == 200, answer
        expected = {"encoding": encoding, "segmentsPerRecipient": per_recipient,
                    "segments": 2 * per_recipient}
        assert {k: answer[k] for k in expected} == expected, text
        [frame] = await phone.recv_sms(1)
        assert frame["message"] == text  # nothing was lost or re-encoded on the way
        await phone.ack(frame)
        resp = await hub.get(f"/api/messages/{answer['messageId']}",
                             headers={"Authorization": auth})
        shown = await resp.json()
        assert {k: shown[k] for k in expected} == expected, text
    await phone.close()
