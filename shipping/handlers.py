from django.utils import timezone

from mediator import PermanentError, handles
from ordering.events import OrderCancelled, OrderPlaced
from shipping import services
from shipping.commands import BookShipment, CancelShipmentBooking
from shipping.models import Shipment, ShipmentStatus


@handles(OrderPlaced)
def create_shipment(event: OrderPlaced) -> None:
    # A cancellation handled first has left a cancelled shipment: keep it so.
    Shipment.objects.get_or_create(order_id=event.order_id)


@handles(OrderCancelled)
def cancel_shipment(event: OrderCancelled) -> None:
    shipment, created = Shipment.objects.select_for_update().get_or_create(
        order_id=event.order_id,
        # Events of one order can be handled out of order: if OrderPlaced's
        # handler has not run yet, record the cancellation now; it will find it.
        defaults={"status": ShipmentStatus.CANCELLED, "cancelled_at": timezone.now()},
    )
    if created:
        return
    if shipment.status == ShipmentStatus.DISPATCHED:
        when = f" on {shipment.dispatched_at:%Y-%m-%d %H:%M}" if shipment.dispatched_at else ""
        raise PermanentError(
            f"Shipment of order #{event.order_id} was already dispatched{when}; it cannot "
            "be cancelled. Arrange a return with the customer."
        )
    if shipment.status != ShipmentStatus.CANCELLED:
        shipment.status = ShipmentStatus.CANCELLED
        shipment.cancelled_at = timezone.now()
        shipment.save(update_fields=["status", "cancelled_at", "updated_at"])


@handles(BookShipment)
def book_shipment(command: BookShipment) -> dict[str, int]:
    shipment = services.book_shipment(order_id=command.order_id, ship_to=command.ship_to)
    return {"shipment_id": shipment.pk}


@handles(CancelShipmentBooking)
def cancel_shipment_booking(command: CancelShipmentBooking) -> None:
    services.cancel_booking(order_id=command.order_id)
