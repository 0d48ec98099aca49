"""An operator in the admin, in a real browser, with a real worker: a mail
server refuses, the delivery is poisoned, the operator fixes it and retries."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from mediator.models import PoisonedTask, PoisonStatus
from notifications.models import SentEmail
from ordering.services import place_demo_order
from tests.browser.test_customer import SETTLE, save_screenshot
from tests.mediator.helpers import store
from tests.support import Worker, wait_for
from tests.testapp.mail import SwitchableBackend

pytestmark = pytest.mark.django_db(transaction=True)
SEND = "notifications.handlers.send_email"


@pytest.fixture
def refusing_mail_server() -> object:
    r = store()
    r.set(SwitchableBackend.REFUSE_KEY, 1)
    yield r
    r.delete(SwitchableBackend.REFUSE_KEY)


def admin_log_in(page: Page, base_url: str) -> None:
    User.objects.create_superuser("op", "op@example.com", "op-pw-12345")
    page.goto(f"{base_url}/admin/login/")
    page.get_by_label("Username").fill("op")
    page.get_by_label("Password").fill("op-pw-12345")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Mediator dashboard")).to_be_visible()


def handler_row(page: Page, handler: str):
    return page.locator(f'#handlers tr[data-handler="{handler}"]')


def test_operator_finds_a_poisoned_mail_fixes_the_server_retries_and_sees_it_resolved(
    celery_worker: Worker, live_server, page: Page, refusing_mail_server, tmp_path: Path
) -> None:
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    order = place_demo_order(owner=alice, sku="MUG-01", quantity=1)
    poisoned = wait_for(
        lambda: PoisonedTask.objects.filter(handler=SEND).first(), message="the send to be poisoned"
    )
    assert "refused the e-mail for good" in poisoned.exception

    admin_log_in(page, live_server.url)
    page.get_by_role("link", name="Mediator dashboard").click()
    expect(handler_row(page, SEND).locator(".poisoned")).to_have_text("1")
    expect(handler_row(page, "shipping.handlers.create_shipment").locator(".done")).to_have_text(
        "1"
    )
    save_screenshot(page, tmp_path, "dashboard.png")

    handler_row(page, SEND).locator(".poisoned a").click()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("refused the e-mail for good")

    # The cause: the mail server refused. Fixed, then retried from the admin.
    refusing_mail_server.delete(SwitchableBackend.REFUSE_KEY)
    rows.first.locator("input.action-select").check()
    page.locator("select[name=action]").select_option("retry")
    page.locator("button[name=index]").click()  # the actions bar's Go button
    expect(page.locator(".messagelist")).to_contain_text("Re-enqueued 1 task(s).")

    def resolved() -> bool:
        page.goto(f"{live_server.url}/admin/mediator/poisonedtask/?status__exact=resolved")
        return page.locator("#result_list tbody tr").count() == 1

    wait_for(resolved, timeout=SETTLE / 1000, interval=0.5, message="the row to be resolved")
    page.goto(f"{live_server.url}/admin/")
    page.get_by_role("link", name="Mediator dashboard").click()
    expect(handler_row(page, SEND).locator(".poisoned")).to_have_text("0")
    expect(handler_row(page, SEND).locator(".done")).to_have_text("1")
    email = SentEmail.objects.get(kind="order_confirmation")
    assert email.sent_at is not None
    assert email.subject == f"Your order #{order.pk} is confirmed"
    assert PoisonedTask.objects.get(handler=SEND).status == PoisonStatus.RESOLVED
