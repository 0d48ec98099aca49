"""Shipping's handlers, delivered as a worker delivers them (mediator.testing,
in-process): through the behaviours and the inbox, retried or poisoned."""

from collections.abc import Callable
from decimal import Decimal

from mediator.testing import Deliveries, Outcome
from ordering.events import OrderCancelled, OrderPlaced
from shipping.handlers import cancel_shipment, create_shipment
from shipping.models import Shipment, ShipmentStatus

Deliver = Callable[..., Deliveries]
PLACED = OrderPlaced(order_id=7, customer_id=1, customer_email="a@example.com", total=Decimal(5))
CANCELLED = OrderCancelled(
    order_id=7, customer_id=1, customer_email="a@example.com", reason="", cancelled_by_id=1
)


def test_cancel_then_place_in_that_order_leaves_no_live_shipment(mediator_deliver: Deliver) -> None:
    # Handled before OrderPlaced's handler ran: a worker may take them in any order.
    mediator_deliver(CANCELLED, handler=cancel_shipment).assert_all(Outcome.DONE)
    mediator_deliver(PLACED, handler=create_shipment).assert_all(Outcome.DONE)
    shipment = Shipment.objects.get(order_id=7)
    assert shipment.status == ShipmentStatus.CANCELLED
    assert shipment.cancelled_at is not None


def test_place_then_cancel_cancels_the_shipment_once_even_if_redelivered(
    mediator_deliver: Deliver,
) -> None:
    mediator_deliver(PLACED, handler=create_shipment)
    cancelled = mediator_deliver(CANCELLED, handler=cancel_shipment)
    shipment = Shipment.objects.get(order_id=7)
    assert shipment.status == ShipmentStatus.CANCELLED
    first_cancelled_at = shipment.cancelled_at

    assert cancelled.redeliver().outcome(cancel_shipment) == Outcome.DUPLICATE
    shipment.refresh_from_db()
    assert shipment.cancelled_at == first_cancelled_at


def test_a_dispatched_shipment_refuses_cancellation_and_the_operator_sees_why(
    mediator_deliver: Deliver,
) -> None:
    mediator_deliver(PLACED, handler=create_shipment)
    Shipment.objects.update(status=ShipmentStatus.DISPATCHED)
    delivery = mediator_deliver(CANCELLED, handler=cancel_shipment).of(cancel_shipment)
    # A refusal is not retried: poisoned on its first attempt, for an operator.
    assert (delivery.outcome, delivery.attempts) == (Outcome.POISONED, 1)
    row = delivery.poisoned_task
    assert row is not None
    assert row.exception.startswith("PermanentError: Shipment of order #7 was already dispatched")
    assert Shipment.objects.get(order_id=7).status == ShipmentStatus.DISPATCHED
