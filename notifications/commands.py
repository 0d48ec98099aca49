"""The notifications app's commands (a step of ordering's checkout saga)."""

from decimal import Decimal

from mediator import Command


class SendOrderConfirmation(Command):
    """Returns {"email_id": ...} (None when the customer has no address)."""

    event_type = "notifications.SendOrderConfirmation"
    about = "order_id"

    order_id: int
    customer_email: str
    total: Decimal
