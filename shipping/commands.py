"""The shipping app's commands (steps of ordering's checkout saga)."""

from mediator import Command


class BookShipment(Command):
    """Returns {"shipment_id": ...}; refused for a country we do not ship to."""

    event_type = "shipping.BookShipment"
    about = "order_id"

    order_id: int
    ship_to: str


class CancelShipmentBooking(Command):
    event_type = "shipping.CancelShipmentBooking"
    about = "order_id"

    order_id: int
