"""The dashboard in a real Chromium, for the people who use it by keyboard or on a phone:
live refreshes keep the focus and the scroll position where they were, and at 375 px every
page fits the screen with each row's status badge in view, next to the row's name.
Screenshots at phone width go to test-output/browser/<test name>/."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from device_sim import PhoneBehaviour, SimulatedPhone

from tests.browser.test_dashboard_browser import LIVE, PHONE, horizontal_overflow, log_in, url
from tests.dashboard_support import add_operator, add_webhook_rows
from tests.support import PASSWORD, add_device, send, ws_url

TABLET = {"width": 800, "height": 700}  # wide tables still tables, and wider than the box

# Counts the swaps of each live region (htmx fires afterSwap on the region and on each
# element put into it; the region's own event is counted).
COUNT_SWAPS = """() => {
  window.swaps = {};
  document.addEventListener("htmx:afterSwap", (e) => {
    if (e.target === e.detail.target) {
      window.swaps[e.target.id] = (window.swaps[e.target.id] || 0) + 1;
    }
  });
}"""


async def swaps(page: Any, region: str) -> int:
    return int(await page.evaluate(f"window.swaps[{region!r}] || 0"))


async def wait_swaps(page: Any, region: str, more: int) -> None:
    """Wait until `region` has been refreshed `more` more times."""
    # Polled from here: page.wait_for_function would need eval, which the CSP forbids.
    target = await swaps(page, region) + more
    deadline = asyncio.get_running_loop().time() + 10
    while await swaps(page, region) < target:
        assert asyncio.get_running_loop().time() < deadline, f"{region} was not refreshed"
        await asyncio.sleep(0.1)


async def focused(page: Any) -> tuple[str | None, bool]:
    """Where the focused element links to, and whether it is the element marked before (or
    a new one put in its place by a refresh)."""
    found = await page.evaluate(
        "[document.activeElement.getAttribute('href'), "
        "document.activeElement.dataset.marked === 'yes']")
    return found[0], found[1]


async def test_live_refreshes_keep_the_focus_and_the_scroll_position(
    make_hub: Any, browser: Any,
) -> None:
    from playwright.async_api import expect

    hub = await make_hub(**LIVE)  # a refresh every second
    device_id = await add_device(hub, "shop-phone-1")
    await add_device(hub, "back-office")
    await add_operator(hub)
    page = await browser.new_page(viewport=TABLET)
    problems: list[str] = []  # script errors, or anything the CSP blocks
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await log_in(page, hub, "/dashboard/devices")
    await page.evaluate(COUNT_SWAPS)

    # A table wider than its box, scrolled sideways, stays scrolled through refreshes.
    box = page.locator("#phones-table")
    assert await box.evaluate("b => b.scrollWidth - b.clientWidth") > 100
    await box.evaluate("b => { b.scrollLeft = 100; }")
    await wait_swaps(page, "live-devices", 2)
    assert await box.evaluate("b => b.scrollLeft") == 100

    # Focus on a link, put there after a click (the refreshes go on, a stray click must not
    # stop them): each refresh replaces the link, and the focus lands on the new one, which
    # Enter follows.
    await box.click(position={"x": 5, "y": 5})
    phone_page = f"/dashboard/devices/{device_id}"
    link = page.locator(f"#device-{device_id} a[href='{phone_page}']")
    await link.evaluate("a => { a.dataset.marked = 'yes'; a.focus(); }")
    await wait_swaps(page, "live-devices", 3)
    assert await focused(page) == (phone_page, False)  # replaced, and refocused
    await page.keyboard.press("Enter")
    await page.wait_for_url(url(hub, phone_page))

    # Keyboard focus in a live region: its refreshes wait until the focus leaves it, so
    # nothing moves under a keyboard or screen-reader user; then it catches up at once.
    await page.goto(url(hub, "/dashboard"))
    await page.evaluate(COUNT_SWAPS)
    for _ in range(40):
        await page.keyboard.press("Tab")
        if (await focused(page))[0] == phone_page:
            break
    assert (await focused(page))[0] == phone_page, "Tab never reached the phone's link"
    await page.evaluate("document.activeElement.dataset.marked = 'yes'")
    badge = page.locator(f"#phone-{device_id} [data-presence]")
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD, PhoneBehaviour()):
        await asyncio.sleep(3)  # three refresh periods
        assert await focused(page) == (phone_page, True)  # the very same element, focused
        assert await swaps(page, "live-overview") == 0
        await expect(badge).to_have_text("Offline")  # held while the keyboard is there
        await page.locator("h1").click()  # the focus leaves the region
        await expect(badge).to_have_text("Online", timeout=3000)
    assert problems == []


async def visible_beside_its_name(page: Any, selector: str) -> dict[str, Any]:
    """Where the badge is once the page is scrolled (vertically only) to it: inside the
    viewport's width, not hidden by anything, and on the line of its row's name."""
    return dict(await page.locator(selector).first.evaluate("""(el) => {
      const first = el.getBoundingClientRect();
      window.scrollTo(0, window.scrollY + first.top - window.innerHeight / 2);
      const r = el.getBoundingClientRect();
      const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      const row = el.closest("tr, li");
      const name = row ? row.querySelector("th[scope=row], a") : null;
      const n = name ? name.getBoundingClientRect() : null;
      return {
        left: r.left, right: r.right, viewport: document.documentElement.clientWidth,
        unhidden: hit !== null && (el === hit || el.contains(hit)),
        besideName: n === null ||
          Math.abs((n.top + n.bottom) / 2 - (r.top + r.bottom) / 2) < n.height,
      };
    }"""))


async def test_at_phone_width_every_page_fits_with_the_status_in_view(
    make_hub: Any, browser: Any, output_dir: Path,
) -> None:
    hub = await make_hub()
    device_id = await add_device(hub, "shop-phone-1")
    await add_device(hub, "warehouse-north-entrance-phone-2")  # a long name must wrap
    await add_operator(hub)
    hooks = await add_webhook_rows(hub, device_id)
    info = {"model": "Pixel 7 Pro", "app": "1.4.2", "sims": 2}
    behaviour = PhoneBehaviour(sent_delay=0.05, delivered_delay=0.05)
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD, behaviour, info) as phone:
        await phone.send_heartbeat(87, True, 3)
        message_id = (await send(hub, numbers=["+15550000001", "+15550000002"]))["messageId"]
        await send(hub, text="another", priority=5)
        await phone.wait_for(lambda: len(phone.reports) == 6 and phone.outbox_size == 0)

        page = await browser.new_page(viewport=PHONE)
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        await log_in(page, hub, "/dashboard")
        pages = [
            ("overview", "/dashboard", [f"#phone-{device_id} [data-presence]"]),
            ("devices", "/dashboard/devices", [f"#device-{device_id} [data-presence]"]),
            ("device", f"/dashboard/devices/{device_id}",
             ["#device-facts [data-presence]", f"#recent-{message_id} [data-status]"]),
            ("message", f"/dashboard/messages/{message_id}",
             ["#message-status [data-status]", "#recipient-2 [data-status]"]),
            ("messages", "/dashboard/messages", ["table.stack tbody tr [data-status]"]),
            ("webhooks", "/dashboard/webhooks",
             [f"#webhook-{hooks.failing} [data-health]", f"#webhook-{hooks.healthy} [data-health]",
              f"#failure-{hooks.failed_deliveries[0]} [data-state]"]),
        ]
        for name, path, badges in pages:
            await page.goto(url(hub, path))
            await page.screenshot(path=output_dir / f"{name}-375.png", full_page=True)
            assert await horizontal_overflow(page) <= 0, f"{name} scrolls sideways at 375 px"
            for selector in badges:
                where = await visible_beside_its_name(page, selector)
                assert where["left"] >= 0 and where["right"] <= where["viewport"], (name, where)
                assert where["unhidden"] and where["besideName"], (name, selector, where)
    assert problems == []
