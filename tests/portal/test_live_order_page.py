"""The order page's live part with a real worker, and the log lines of the
handler runs it shows."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from mediator.models import OutboxMessage
from ordering.models import Order
from tests.support import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def settled_fragment(client: Client, order: Order) -> str:
    """Poll the live endpoint the page's script polls, until it says settled."""
    url = reverse("orders:order-live", args=[order.pk])

    def settled() -> str | None:
        response = client.get(url)
        assert response.status_code == 200
        return response.content.decode() if response["X-Live-Settled"] == "true" else None

    return wait_for(settled, timeout=60, interval=0.2, message="the order page to settle")


def test_the_live_part_follows_an_order_from_placed_to_cancelled(
    celery_worker: Worker, client: Client
) -> None:
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    client.force_login(alice)
    client.post(reverse("orders:order-place-demo"), {"sku": "TEA-07", "quantity": "1"})
    order = Order.objects.get(owner=alice)

    placed = settled_fragment(client, order)
    assert 'data-handler="create_shipment" data-state="done"' in placed
    assert 'data-handler="send_order_confirmation" data-state="done"' in placed
    assert re.search(r'id="shipment-status"><span class="badge badge-pending">Pending', placed)
    assert f"Your order #{order.pk} is confirmed" in placed

    client.post(reverse("orders:order-cancel", args=[order.pk]))
    cancelled = settled_fragment(client, order)
    assert cancelled.count('data-state="done"') == 4
    assert re.search(r'id="order-status"><span class="badge badge-cancelled">', cancelled)
    assert re.search(r'id="shipment-status"><span class="badge badge-cancelled">', cancelled)
    assert f"Your order #{order.pk} is cancelled" in cancelled
    assert "Refresh" not in cancelled


def test_every_log_line_of_a_handler_run_names_event_handler_attempt_and_correlation(
    celery_worker: Worker, client: Client
) -> None:
    alice = User.objects.create_user("bob", "bob@example.com", "pw")
    client.force_login(alice)
    response = client.post(
        reverse("orders:order-place-demo"),
        {"sku": "MUG-01", "quantity": "1"},
        headers={"X-Correlation-ID": "trace-me-42"},
    )
    assert response["X-Correlation-ID"] == "trace-me-42"
    order = Order.objects.get(owner=alice)
    settled_fragment(client, order)
    event = OutboxMessage.objects.get(event_type="ordering.OrderPlaced")
    assert event.correlation_id == "trace-me-42"

    def run_lines() -> list[str]:
        return [line for line in celery_worker.log().splitlines() if str(event.event_id) in line]

    lines = wait_for(lambda: len(run_lines()) >= 2 and run_lines(), message="log lines")
    for handler in (
        "shipping.handlers.create_shipment",
        "notifications.handlers.send_order_confirmation",
    ):
        [line] = [ln for ln in lines if f"handler={handler} " in ln]
        assert f"event_id={event.event_id} " in line
        assert "event_type=ordering.OrderPlaced " in line
        assert "attempt=1 " in line
        assert "correlation_id=trace-me-42 " in line
        # The event was published by the PlaceDemoOrder command the view sent.
        assert line.endswith(f"causation_id={event.causation_id}")
        assert event.causation_id
