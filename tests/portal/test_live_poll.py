"""The live part's poll: what it costs the database, and 304 while unchanged."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mediator import publish
from mediator.models import DeliveryProgress, InboxRecord, OutboxMessage
from ordering.events import OrderCancelled
from ordering.models import Order
from ordering.services import LineItem, place_order

ITEM = LineItem(sku="MUG-01", name="Mug", quantity=1, unit_price=Decimal("12.50"))


def queries_of_one_poll(client: Client, order: Order) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("orders:order-live", args=[order.pk])).status_code == 200
    return [q["sql"] for q in queries]


def busy_history(order: Order, events: int) -> None:
    """Many events about the order, each with handled and retrying deliveries."""
    with transaction.atomic():
        for n in range(events):
            publish(
                OrderCancelled(
                    order_id=order.pk, customer_id=order.owner_id, customer_email="a@example.com",
                    reason=f"r{n}", cancelled_by_id=None,
                )
            )  # fmt: skip
    for row in OutboxMessage.objects.filter(subject=f"order_id={order.pk}"):
        InboxRecord.objects.create(event_id=row.event_id, handler="shipping.handlers.x")
        DeliveryProgress.objects.create(event_id=row.event_id, handler="h", state="retrying")


@pytest.mark.django_db
def test_a_poll_makes_as_many_queries_for_a_long_history_as_for_a_short_one(
    client: Client, alice: User
) -> None:
    quiet = place_order(owner=alice, items=[ITEM])
    busy = place_order(owner=alice, items=[ITEM])
    busy_history(busy, events=30)
    # Unrelated history elsewhere is not read either.
    busy_history(place_order(owner=alice, items=[ITEM]), events=30)
    client.force_login(alice)
    queries_of_one_poll(client, quiet)  # the session is loaded, caches are warm

    assert len(queries_of_one_poll(client, busy)) == len(queries_of_one_poll(client, quiet))
    for sql in queries_of_one_poll(client, busy):
        if 'FROM "mediator_outboxmessage"' in sql:
            assert '"subject" =' in sql
            assert "LIMIT" in sql


@pytest.mark.django_db
def test_a_poll_answers_304_until_something_changes(client: Client, alice: User) -> None:
    order = place_order(owner=alice, items=[ITEM])
    client.force_login(alice)
    url = reverse("orders:order-live", args=[order.pk])
    first = client.get(url)
    etag = first["ETag"]

    unchanged = client.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged["X-Live-Settled"] == "false"
    assert unchanged["ETag"] == etag

    row = OutboxMessage.objects.get(subject=f"order_id={order.pk}")
    InboxRecord.objects.create(event_id=row.event_id, handler="shipping.handlers.create_shipment")
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert 'data-handler="create_shipment" data-state="done"' in (changed.content.decode())
