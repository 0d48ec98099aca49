"""Booking shipments with the carrier, and cancelling them."""

from django.utils import timezone

from mediator import PermanentError
from shipping.models import Shipment, ShipmentStatus

SHIPS_TO = {
    "GB": "United Kingdom",
    "IE": "Ireland",
    "FR": "France",
    "DE": "Germany",
    "NL": "Netherlands",
}


class ShippingRefused(PermanentError):
    """The carrier will not take this shipment; retrying will not change that."""


def book_shipment(*, order_id: int, ship_to: str) -> Shipment:
    if ship_to not in SHIPS_TO:
        raise ShippingRefused(f"We do not ship to {ship_to!r}; we ship to {', '.join(SHIPS_TO)}.")
    shipment, _ = Shipment.objects.get_or_create(order_id=order_id, defaults={"ship_to": ship_to})
    return shipment


def cancel_booking(*, order_id: int) -> None:
    Shipment.objects.filter(order_id=order_id, status=ShipmentStatus.PENDING).update(
        status=ShipmentStatus.CANCELLED, cancelled_at=timezone.now(), updated_at=timezone.now()
    )
