"""The ordering app's commands: the changes to orders anyone may ask for.

The customer's pages, the admin and any API send these, so all of them go
through one path (ordering.handlers, then ordering.services).
"""

from typing import Annotated

from pydantic import AfterValidator, Field

from mediator import Command

REASON_LENGTH = 200  # Order.cancel_reason's length

# Text from a form: NUL characters removed. They mean nothing in what a person
# types, and PostgreSQL refuses them in text and JSON columns (a 500 otherwise).
Typed = Annotated[str, AfterValidator(lambda text: text.replace("\x00", ""))]


class PlaceDemoOrder(Command):
    """One line from the demo catalogue. The handler returns the Order."""

    event_type = "ordering.PlaceDemoOrder"

    owner_id: int
    sku: Typed = Field(max_length=64)
    quantity: int


class CancelOrder(Command):
    """Cancel an order as `by_user_id` (its owner, or staff). Returns the Order."""

    event_type = "ordering.CancelOrder"
    about = "order_id"

    order_id: int
    by_user_id: int
    # Longer reasons are cut, as the order keeps only this much.
    reason: Annotated[Typed, AfterValidator(lambda text: text[:REASON_LENGTH])] = ""


class CheckOutDemoOrder(Command):
    """Buy one line from the demo catalogue with a test card (a paid order,
    through the checkout saga). The handler returns the Order."""

    event_type = "ordering.CheckOutDemoOrder"

    owner_id: int
    sku: Typed = Field(max_length=64)
    quantity: int
    payment_token: Typed = Field(max_length=64)
    ship_to: Typed = Field(max_length=8)


# The checkout saga's steps in this app (ordering.sagas). Their fields are
# filled from the saga's data and the outputs of the steps before them.


class ReserveStock(Command):
    event_type = "ordering.ReserveStock"
    about = "order_id"

    order_id: int


class ReleaseStock(Command):
    event_type = "ordering.ReleaseStock"
    about = "order_id"

    order_id: int


class ChargePayment(Command):
    """Returns {"charge_id": ...}."""

    event_type = "ordering.ChargePayment"
    about = "order_id"

    order_id: int
    saga_run_id: str  # the idempotency key's base: the same on every retry
    payment_token: str


class RefundPayment(Command):
    event_type = "ordering.RefundPayment"
    about = "order_id"

    order_id: int
    saga_run_id: str
