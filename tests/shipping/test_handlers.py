from decimal import Decimal

import pytest

from mediator import PermanentError
from ordering.events import OrderCancelled, OrderPlaced
from shipping.handlers import cancel_shipment, create_shipment
from shipping.models import Shipment, ShipmentStatus

PLACED = OrderPlaced(order_id=7, customer_id=1, customer_email="a@example.com", total=Decimal(5))
CANCELLED = OrderCancelled(
    order_id=7, customer_id=1, customer_email="a@example.com", reason="", cancelled_by_id=1
)


@pytest.mark.django_db
def test_cancel_then_place_in_that_order_leaves_no_live_shipment() -> None:
    cancel_shipment(CANCELLED)  # handled before OrderPlaced's handler ran
    create_shipment(PLACED)
    shipment = Shipment.objects.get(order_id=7)
    assert shipment.status == ShipmentStatus.CANCELLED
    assert shipment.cancelled_at is not None


@pytest.mark.django_db
def test_place_then_cancel_cancels_the_shipment() -> None:
    create_shipment(PLACED)
    cancel_shipment(CANCELLED)
    assert Shipment.objects.get(order_id=7).status == ShipmentStatus.CANCELLED


@pytest.mark.django_db
def test_dispatched_shipment_refuses_cancellation() -> None:
    create_shipment(PLACED)
    Shipment.objects.update(status=ShipmentStatus.DISPATCHED)
    with pytest.raises(PermanentError, match="already dispatched"):
        cancel_shipment(CANCELLED)
