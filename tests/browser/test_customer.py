"""A customer and a stranger in a real browser, with a real worker running."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from ordering.models import Order
from tests.browser.conftest import PageProblems, log_in
from tests.support import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
SETTLE = 60_000  # ms: the worker is real; poll, never sleep


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """Every run takes it; SCREENSHOTS_DIR=docs keeps a copy for the README."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    if os.environ.get("SCREENSHOTS_DIR"):
        shutil.copy(path, Path(os.environ["SCREENSHOTS_DIR"]) / name)
    return path


def test_customer_places_watches_and_cancels_an_order_without_reloading(
    celery_worker: Worker, live_server, page: Page, problems: PageProblems, tmp_path: Path
) -> None:
    User.objects.create_user("alice", "alice@example.com", "alice-pw-123")
    log_in(page, live_server.url, "alice", "alice-pw-123")

    quick = page.locator("#quick-order")
    quick.get_by_label("Product").select_option("PEN-03")
    quick.get_by_label("Quantity").fill("2")
    quick.get_by_role("button", name="Place order").click()
    order = Order.objects.get(owner__username="alice")
    expect(page).to_have_url(f"{live_server.url}/orders/{order.pk}/")
    expect(page.get_by_role("status")).to_contain_text(f"Order #{order.pk} is placed.")

    handlers = page.locator("#timeline .handler")
    expect(handlers).to_have_count(2)
    expect(page.locator('#timeline .handler[data-state="done"]')).to_have_count(2, timeout=SETTLE)
    expect(page.locator("#shipment-status")).to_have_text("Pending")
    expect(page.locator("#emails")).to_contain_text(f"Your order #{order.pk} is confirmed")
    expect(page.locator("#live")).to_have_attribute("data-settled", "true", timeout=SETTLE)

    # Cancel: a confirmation step first, then the POST.
    page.get_by_text("Cancel this order…").click()
    page.get_by_label("Reason (optional)").fill("changed my mind")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.get_by_role("button", name=f"Yes, cancel order #{order.pk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Order #{order.pk} is cancelled.")
    after_cancel = len(navigations)

    # From here on the page updates itself: no reload, by us or by it.
    expect(page.locator("#shipment-status")).to_have_text("Cancelled", timeout=SETTLE)
    expect(page.locator("#emails")).to_contain_text(
        f"Your order #{order.pk} is cancelled", timeout=SETTLE
    )
    expect(page.locator('#timeline .handler[data-state="done"]')).to_have_count(4, timeout=SETTLE)
    expect(page.locator("#order-status")).to_have_text("Cancelled")
    expect(page.locator("#live")).to_have_attribute("data-settled", "true", timeout=SETTLE)
    assert len(navigations) == after_cancel
    expect(page.get_by_text("Cancel this order…")).to_have_count(0)
    save_screenshot(page, tmp_path, "order-page.png")
    assert problems.seen == []


def test_a_stranger_can_neither_see_nor_cancel_someone_elses_order(
    celery_worker: Worker, live_server, page: Page, problems: PageProblems
) -> None:
    alice = User.objects.create_user("alice", "alice@example.com", "alice-pw-123")
    from ordering.services import place_demo_order

    order = place_demo_order(owner=alice, sku="MUG-01", quantity=1)
    User.objects.create_user("mallory", "mallory@example.com", "mallory-pw-123")
    log_in(page, live_server.url, "mallory", "mallory-pw-123")

    expect(page.locator("table.orders")).not_to_contain_text(f"#{order.pk}")
    problems.allowed_statuses.add(404)
    response = page.goto(f"{live_server.url}/orders/{order.pk}/")
    assert response is not None
    assert response.status == 404
    # A forged POST, with a valid CSRF token of mallory's own session.
    page.goto(f"{live_server.url}/orders/")
    status = page.evaluate(
        """async (url) => {
            const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
            const body = new URLSearchParams({csrfmiddlewaretoken: token});
            const response = await fetch(url, {method: "POST", body});
            return response.status;
        }""",
        f"{live_server.url}/orders/{order.pk}/cancel/",
    )
    assert status == 404
    order.refresh_from_db()
    assert order.status == "placed"
    assert [p for p in problems.seen if "404" not in p] == []


@pytest.mark.parametrize("path", ["/accounts/login/", "/orders/", "/orders/{order}/"])
def test_customer_pages_have_no_console_errors_or_failed_requests(
    celery_worker: Worker, live_server, page: Page, problems: PageProblems, path: str
) -> None:
    alice = User.objects.create_user("alice", "alice@example.com", "alice-pw-123")
    from ordering.services import place_demo_order

    order = place_demo_order(owner=alice, sku="TEA-07", quantity=1)
    if path != "/accounts/login/":
        log_in(page, live_server.url, "alice", "alice-pw-123")
    page.set_viewport_size({"width": 375, "height": 740})  # a phone
    page.goto(live_server.url + path.format(order=order.pk))
    page.wait_for_load_state("networkidle")
    if "{order}" in path:
        expect(page.locator("#live")).to_have_attribute("data-settled", "true", timeout=SETTLE)
    # Nothing wider than the phone's screen.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"page is {width}px wide on a 375px screen"
    assert re.search(r"\S", page.title())
    assert problems.seen == []


def test_without_javascript_the_order_page_offers_a_refresh_and_cancelling_still_works(
    celery_worker: Worker, live_server, browser
) -> None:
    User.objects.create_user("alice", "alice@example.com", "alice-pw-123")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, live_server.url, "alice", "alice-pw-123")
    page.get_by_role("button", name="Place order").click()
    order = Order.objects.get(owner__username="alice")

    def settled_after_refresh() -> bool:
        refresh = page.get_by_role("link", name="Refresh")
        if refresh.count() == 0:
            return True
        refresh.click()
        return False

    wait_for(settled_after_refresh, timeout=SETTLE / 1000, interval=0.5, message="a settled page")
    expect(page.locator('#timeline .handler[data-state="done"]')).to_have_count(2)
    page.get_by_text("Cancel this order…").click()  # <details>: no script needed
    page.get_by_role("button", name=f"Yes, cancel order #{order.pk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Order #{order.pk} is cancelled.")
    wait_for(settled_after_refresh, timeout=SETTLE / 1000, interval=0.5, message="a settled page")
    expect(page.locator("#shipment-status")).to_have_text("Cancelled")
    context.close()


def test_a_paid_order_shows_its_checkout_steps_live_and_visibly_undoes_them(
    celery_worker: Worker, live_server, page: Page, problems: PageProblems, tmp_path: Path
) -> None:
    from ordering.models import StockItem

    StockItem.objects.create(sku="MUG-01", on_hand=5)
    User.objects.create_user("alice", "alice@example.com", "alice-pw-123")
    log_in(page, live_server.url, "alice", "alice-pw-123")

    # A card that works: every step done, the page says so without a reload.
    buy = page.locator("#checkout")
    buy.get_by_label("Product").select_option("MUG-01")
    buy.get_by_role("button", name="Buy").click()
    order = Order.objects.get(owner__username="alice")
    expect(page.get_by_role("status")).to_contain_text(f"Order #{order.pk} is being checked out.")
    expect(page.locator("#checkout-state")).to_have_attribute(
        "data-state", "completed", timeout=SETTLE
    )
    expect(page.locator('#checkout-steps .step[data-state="done"]')).to_have_count(4)
    expect(page.locator("#order-status")).to_have_text("Placed")
    expect(page.locator("#emails")).to_contain_text(
        f"Your order #{order.pk} is confirmed", timeout=SETTLE
    )

    # A country we do not ship to: the booking fails, the payment is refunded
    # and the stock released, newest first; the page shows each step's fate.
    page.goto(f"{live_server.url}/orders/")
    buy = page.locator("#checkout")
    buy.get_by_label("Ship to").select_option("US")
    buy.get_by_role("button", name="Buy").click()
    second = Order.objects.filter(owner__username="alice").exclude(pk=order.pk).get()
    expect(page).to_have_url(f"{live_server.url}/orders/{second.pk}/")
    state = page.locator("#checkout-state")
    expect(state).to_have_attribute("data-state", "compensated", timeout=SETTLE)
    expect(state).to_contain_text("Undone: nothing was charged or kept for this order.")
    steps = page.locator("#checkout-steps .step")
    expect(steps).to_have_count(4)
    for name, shown in [
        ("reserve_stock", "compensated"),
        ("charge_payment", "compensated"),
        ("book_shipment", "failed"),
        ("send_order_confirmation", "pending"),
    ]:
        expect(page.locator(f'#checkout-steps .step[data-step="{name}"]')).to_have_attribute(
            "data-state", shown
        )
    # The customer reads the refusal, never an exception's name.
    expect(page.locator("#live")).not_to_contain_text("ShippingRefused")
    expect(page.locator("#order-status")).to_have_text("Checkout failed")
    expect(page.locator("#checkout-error")).to_contain_text("We do not ship to 'US'")
    expect(page.locator("#live")).to_have_attribute("data-settled", "true", timeout=SETTLE)
    save_screenshot(page, tmp_path, "checkout-page.png")
    assert StockItem.objects.get(sku="MUG-01").on_hand == 4
    assert problems.seen == []
