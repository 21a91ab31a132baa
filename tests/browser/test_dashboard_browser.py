"""The dashboard in a real Chromium: log in through the form, watch a simulated phone come
online without reloading, cancel a queued message from its page, and screenshots of the
overview and a device page at desktop width and at 375 px (test-output/browser/)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from device_sim import PhoneBehaviour, SimulatedPhone

from smsnodes_hub.appkeys import POOL
from tests.dashboard_support import OPERATOR, OPERATOR_PASSWORD, add_operator
from tests.support import PASSWORD, add_device, basic, send, ws_url

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
LIVE = {"SMSNODES_DASHBOARD_REFRESH_SECONDS": "1"}


def url(hub: TestClient, path: str) -> str:
    return str(hub.make_url(path))


async def log_in(page: Any, hub: TestClient, path: str) -> None:
    """Open `path`, get sent to the login form, log in, and land back on `path`."""
    await page.goto(url(hub, path))
    assert "/dashboard/login" in page.url
    await page.get_by_label("Username").fill(OPERATOR)
    await page.get_by_label("Password").fill(OPERATOR_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(url(hub, path))


async def horizontal_overflow(page: Any) -> int:
    return int(await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"))


async def test_a_phone_comes_online_without_a_reload_and_pages_fit_a_phone(
    make_hub: Any, browser: Any, output_dir: Path,
) -> None:
    from playwright.async_api import expect

    hub = await make_hub(**LIVE)
    device_id = await add_device(hub, "shop-phone-1")
    await add_device(hub, "back-office")
    await add_operator(hub)
    page = await browser.new_page(viewport=DESKTOP)
    # Anything the Content-Security-Policy blocks, or a script error, shows up here.
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await log_in(page, hub, "/dashboard/devices")
    presence = page.locator(f"#device-{device_id} [data-presence]")
    await expect(presence).to_have_text("Offline")
    # A reload would drop this: the badge must change by the page's own polling.
    await page.evaluate("window.notReloaded = true")

    info = {"model": "Pixel 7", "app": "1.4.2", "sims": 2}
    behaviour = PhoneBehaviour(sent_delay=0.05, delivered_delay=0.05)
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD, behaviour, info) as phone:
        await phone.send_heartbeat(87, True, 3)
        await expect(presence).to_have_text("Online", timeout=5000)
        assert await page.evaluate("window.notReloaded === true")
        row = page.locator(f"#device-{device_id}")
        await expect(row).to_contain_text("Pixel 7")
        await expect(row).to_contain_text("87 %")

        for n in range(3):
            await send(hub, text=f"browser test {n}", priority=n + 1)
        await phone.wait_for(lambda: len(phone.reports) == 6 and phone.outbox_size == 0)
        await page.goto(url(hub, "/dashboard"))
        await expect(page.locator("#phones-online")).to_contain_text("1")
        await page.screenshot(path=output_dir / "overview-desktop.png", full_page=True)
        await page.set_viewport_size(PHONE)
        await page.screenshot(path=output_dir / "overview-375.png", full_page=True)
        assert await horizontal_overflow(page) <= 0, "the overview scrolls sideways at 375 px"

        await page.goto(url(hub, f"/dashboard/devices/{device_id}"))
        await expect(page.locator("#device-facts")).to_contain_text("Online")
        await expect(page.locator("#live-messages")).to_contain_text("delivered")
        await page.screenshot(path=output_dir / "device-375.png", full_page=True)
        assert await horizontal_overflow(page) <= 0, "the device page scrolls sideways"
        await page.set_viewport_size(DESKTOP)
        await page.screenshot(path=output_dir / "device-desktop.png", full_page=True)

        # And back: the phone goes away, the overview says so by itself.
        await page.goto(url(hub, "/dashboard"))
        phone_card = page.locator(f"#phone-{device_id} [data-presence]")
        await expect(phone_card).to_have_text("Online")
        await page.evaluate("window.notReloaded = true")
    await expect(phone_card).to_have_text("Offline", timeout=5000)
    assert await page.evaluate("window.notReloaded === true")
    assert problems == []


async def test_cancel_a_queued_message_from_its_page(
    make_hub: Any, browser: Any, output_dir: Path,
) -> None:
    from playwright.async_api import expect

    hub = await make_hub(**LIVE)
    await add_device(hub, "shop-phone-1")
    await add_operator(hub)
    sent = await send(hub, text="cancel me please")  # the phone is offline: it waits
    message_id = sent["messageId"]
    page = await browser.new_page(viewport=DESKTOP)
    dialogs: list[str] = []
    answering: list[asyncio.Future[None]] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        answering.append(asyncio.ensure_future(dialog.accept()))

    page.on("dialog", accept)
    await log_in(page, hub, f"/dashboard/messages/{message_id}")
    await expect(page.locator("#message-status")).to_have_text("queued")
    await page.get_by_role("button", name="Cancel message").click()
    await page.wait_for_url(f"**/dashboard/messages/{message_id}?done=cancelled")
    assert dialogs and "Cancel message" in dialogs[0]
    await expect(page.locator("#message-status")).to_have_text("cancelled")
    await expect(page.get_by_role("status").first).to_contain_text("Cancelled")
    await expect(page.get_by_role("button", name="Cancel message")).to_have_count(0)
    await expect(page.locator(".timeline")).to_contain_text("cancelled")
    await page.screenshot(path=output_dir / "message-cancelled.png", full_page=True)

    # The hub agrees, and the phone never gets it.
    resp = await hub.get(f"/api/messages/{message_id}", headers=basic())
    assert (await resp.json())["status"] == "cancelled"
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await asyncio.sleep(0.3)
        assert phone.received == []

    # A link from another site: the SameSite=Strict cookie is held back on that request;
    # the hub answers with a page that reloads itself, which carries it.
    await page.goto("about:blank")
    await page.set_content(f'<a href="{url(hub, "/dashboard/devices")}">phones</a>')
    await page.get_by_role("link", name="phones").click()
    await page.wait_for_url(url(hub, "/dashboard/devices"), timeout=5000)
    await expect(page.get_by_role("heading", name="Phones")).to_be_visible()

    # The session ends elsewhere (as `admin passwd` does): the open page notices on its
    # next refresh and goes to the login form by itself.
    await hub.app[POOL].execute("DELETE FROM operator_sessions")
    await page.wait_for_url("**/dashboard/login**", timeout=5000)
