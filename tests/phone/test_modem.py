"""The modem radio against the fake mmcli, driven in the test's own process."""

from __future__ import annotations

from smsnodes_phone.radio.modem import ModemRadio

A = "+15550001111"


async def test_a_delivery_is_kept_when_another_sms_vanishes_during_the_poll(fake, monkeypatch):
    fake.put_on_path(monkeypatch)
    radio = ModemRadio()
    sent = await radio.send(A, "hello", None)  # the fake network's status report follows
    assert sent.ok and sent.handle
    # SMS 5 is listed but gone when read (the sender deleted a failed one meanwhile).
    fake.control(ghosts=[5])
    [report] = await radio.poll_deliveries([sent.handle])
    assert (report.handle, report.delivered) == (sent.handle, True)
    assert len(fake.modem_objects()) == 2  # nothing deleted before the outcome is reported
    await radio.forget_delivery(report)
    assert fake.modem_objects() == {}  # the sent SMS and its status report
