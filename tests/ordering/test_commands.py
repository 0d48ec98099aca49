"""The ordering commands: the one path the pages and the admin take to change an order."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from mediator import send
from mediator.messages.envelope import Envelope
from mediator.models import OutboxMessage
from mediator.testing import Outbox
from ordering.commands import CancelOrder, PlaceDemoOrder
from ordering.events import OrderCancelled
from ordering.models import Order, OrderStatus
from ordering.services import LineItem, OrderError, OrderNotFound, place_order

pytestmark = pytest.mark.django_db

ITEM = LineItem(sku="MUG-01", name="Mug", quantity=1, unit_price=Decimal("12.50"))


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", "alice@example.com", "pw")


def cancellation(outbox: Outbox) -> tuple[OrderCancelled, Envelope]:
    """The one OrderCancelled published, and its envelope."""
    event = outbox.one(OrderCancelled)
    return event, outbox.envelope_of(event)


def test_place_demo_order_returns_the_order(alice: User) -> None:
    order = send(PlaceDemoOrder(owner_id=alice.pk, sku="MUG-01", quantity=2))
    assert isinstance(order, Order)
    assert (order.owner_id, order.total) == (alice.pk, Decimal("25.00"))


def test_a_rolled_back_cancel_command_leaves_the_order_and_publishes_nothing(
    mediator_outbox: Outbox, alice: User
) -> None:
    order = place_order(owner=alice, items=[ITEM])

    def cancel_then_change_mind() -> None:
        with transaction.atomic():
            assert send(CancelOrder(order_id=order.pk, by_user_id=alice.pk)).status == "cancelled"
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        cancel_then_change_mind()
    order.refresh_from_db()
    assert order.status == OrderStatus.PLACED
    mediator_outbox.assert_not_published(OrderCancelled)


@pytest.mark.parametrize(
    ("who", "error", "message"),
    [
        ("mallory", OrderNotFound, "Order #{pk} does not exist."),
        ("nobody", OrderError, "There is no active user #999999."),
    ],
)
def test_cancel_command_refusals_reach_the_sender(
    alice: User, who: str, error: type[Exception], message: str
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    user_id = User.objects.create_user("mallory").pk if who == "mallory" else 999999
    with pytest.raises(error) as refusal:
        send(CancelOrder(order_id=order.pk, by_user_id=user_id))
    assert str(refusal.value) == message.format(pk=order.pk)


def test_a_long_reason_is_cut_to_what_the_order_keeps(alice: User) -> None:
    order = place_order(owner=alice, items=[ITEM])
    send(CancelOrder(order_id=order.pk, by_user_id=alice.pk, reason="x" * 5000))
    order.refresh_from_db()
    assert order.cancel_reason == "x" * 200


def test_the_cancel_button_sends_the_command(
    mediator_outbox: Outbox, alice: User, client: Client
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    client.force_login(alice)
    client.post(reverse("orders:order-cancel", args=[order.pk]), {"reason": "y" * 300})
    event, envelope = cancellation(mediator_outbox)
    # Caused by a command (its id is no event's), with the reason cut by it.
    assert envelope.causation_id
    assert not OutboxMessage.objects.filter(event_id=envelope.causation_id).exists()
    assert event.reason == "y" * 200


def test_the_admin_action_sends_the_same_command(
    mediator_outbox: Outbox, alice: User, client: Client
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    staff = User.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(staff)
    response = client.post(
        reverse("admin:ordering_order_changelist"),
        {"action": "cancel_selected", "_selected_action": [order.pk]},
        follow=True,
    )
    assert "Cancelled 1 order(s)." in response.content.decode()
    event, envelope = cancellation(mediator_outbox)
    assert envelope.causation_id
    assert (event.cancelled_by_id, event.reason) == (staff.pk, "Cancelled by an operator")
