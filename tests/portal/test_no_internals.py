"""A customer whose order hits failures sees plain words, never the errors'
text: hosts, ports, driver messages, exception names or dotted code paths.
Staff pages keep every detail. Real worker, real failures (planted faults)."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from mediator.models import PoisonedTask, SagaRun
from ordering import payment_provider
from ordering.models import Order, StockItem
from tests.support import Worker, wait_for
from tests.testapp.handlers import store

pytestmark = pytest.mark.django_db(transaction=True)

SHIP_ERROR = (
    "Error 111 connecting to redis-7.internal.example:6380. Connection refused. "
    "(mediator.delivery.dispatch)"
)
MAIL_ERROR = "Timeout reading from smtp.internal.example:2525 in notifications.services.send"
REFUND_ERROR = "Error 104 from payments.internal.example:8443 (ordering.payment_provider.refund)"
# Nothing of these may reach a customer's page.
LEAKS = [
    "internal.example", ":6380", ":2525", ":8443", "Error 111", "Error 104", "Connection refused",
    "Timeout reading", "PermanentError", "ConnectionError", "Traceback", "mediator.delivery",
    "shipping.handlers", "notifications.handlers", "ordering.handlers", "payment_provider",
]  # fmt: skip


@pytest.fixture(autouse=True)
def faults() -> Iterator[None]:
    store().delete(payment_provider.LEDGER)  # order ids repeat from test to test
    yield
    keys = store().keys("fault:*")
    if keys:
        store().delete(*keys)


def plant(handler: str, fault: str) -> None:
    store().set(f"fault:{handler}", fault)


def every_fragment_until_settled(client: Client, order: Order) -> str:
    """All the live part's answers while it changes, as the page's script polls it,
    then the whole page once settled."""
    url = reverse("orders:order-live", args=[order.pk])
    seen: list[str] = []

    def settled() -> bool:
        response = client.get(url)
        assert response.status_code == 200
        seen.append(response.content.decode())
        return response["X-Live-Settled"] == "true"

    wait_for(settled, timeout=90, interval=0.05, message="the order page to settle")
    seen.append(client.get(reverse("orders:order-detail", args=[order.pk])).content.decode())
    return "\n".join(seen)


def assert_no_leak(page: str) -> None:
    leaked = [text for text in LEAKS if text in page]
    assert not leaked, f"the customer's page shows {leaked}"


def staff_page(client: Client, url: str) -> str:
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    response = client.get(url)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_a_failing_and_a_retrying_handler_are_plain_words_on_the_customer_page(
    celery_worker: Worker, client: Client
) -> None:
    plant("shipping.handlers.create_shipment", f"refuse:{SHIP_ERROR}")
    plant("notifications.handlers.send_order_confirmation", f"down:1:{MAIL_ERROR}")
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    client.force_login(alice)
    client.post(reverse("orders:order-place-demo"), {"sku": "TEA-07", "quantity": "1"})
    order = Order.objects.get(owner=alice)

    seen = every_fragment_until_settled(client, order)

    assert 'data-handler="send_order_confirmation" data-state="retrying"' in seen
    assert "Delayed; we are trying again at " in seen
    assert 'data-handler="create_shipment" data-state="poisoned"' in seen
    assert "Create shipment" in seen
    assert "This has not happened yet; our team has been notified." in seen
    assert "Order placed" in seen
    assert_no_leak(seen)

    poisoned = PoisonedTask.objects.get(handler="shipping.handlers.create_shipment")
    admin = staff_page(client, reverse("admin:mediator_poisonedtask_change", args=[poisoned.pk]))
    assert SHIP_ERROR in admin
    assert "shipping.handlers.create_shipment" in admin


def test_a_delayed_refund_is_plain_words_for_the_customer_and_detail_for_staff(
    celery_worker: Worker, client: Client
) -> None:
    StockItem.objects.create(sku="MUG-01", on_hand=5)
    plant("ordering.handlers.refund_payment", f"flaky:2:{REFUND_ERROR}")
    carol = User.objects.create_user("carol", "carol@example.com", "pw")
    client.force_login(carol)
    client.post(
        reverse("orders:order-checkout"),
        {"sku": "MUG-01", "quantity": "1", "payment_token": payment_provider.APPROVED_TOKEN,
         "ship_to": "US"},
    )  # fmt: skip
    order = Order.objects.get(owner=carol)

    seen = every_fragment_until_settled(client, order)

    assert 'data-step="charge_payment" data-state="compensating"' in seen
    assert "Undoing this step is delayed; we are trying again." in seen
    assert "Undone: nothing was charged or kept for this order." in seen
    assert_no_leak(seen)

    assert order.checkout_run_id is not None
    run = SagaRun.objects.get(pk=order.checkout_run_id)
    admin = staff_page(client, reverse("admin:mediator_sagarun_change", args=[run.pk]))
    assert REFUND_ERROR in admin
