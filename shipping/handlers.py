from django.utils import timezone

from mediator import PermanentError, RetryableError, handles
from ordering.events import OrderCancelled, OrderPlaced
from shipping.models import Shipment, ShipmentStatus


@handles(OrderPlaced)
def create_shipment(event: OrderPlaced) -> None:
    Shipment.objects.get_or_create(order_id=event.order_id)


@handles(OrderCancelled)
def cancel_shipment(event: OrderCancelled) -> None:
    shipment = Shipment.objects.select_for_update().filter(order_id=event.order_id).first()
    if shipment is None:
        # OrderPlaced's handler has not run yet (events of one order may be
        # handled out of order): try again shortly.
        raise RetryableError(f"No shipment for order #{event.order_id} yet.")
    if shipment.status == ShipmentStatus.DISPATCHED:
        raise PermanentError(
            f"Shipment of order #{event.order_id} was already dispatched on "
            f"{shipment.dispatched_at:%Y-%m-%d %H:%M}; it cannot be cancelled. "
            "Arrange a return with the customer."
        )
    if shipment.status != ShipmentStatus.CANCELLED:
        shipment.status = ShipmentStatus.CANCELLED
        shipment.cancelled_at = timezone.now()
        shipment.save(update_fields=["status", "cancelled_at", "updated_at"])
