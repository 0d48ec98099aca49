"""The ordering app's commands: the changes to orders anyone may ask for.

The customer's pages, the admin and any API send these, so all of them go
through one path (ordering.handlers, then ordering.services).
"""

from typing import Annotated

from pydantic import AfterValidator, Field

from mediator import Command

REASON_LENGTH = 200  # Order.cancel_reason's length


class PlaceDemoOrder(Command):
    """One line from the demo catalogue. The handler returns the Order."""

    event_type = "ordering.PlaceDemoOrder"

    owner_id: int
    sku: str = Field(max_length=64)
    quantity: int


class CancelOrder(Command):
    """Cancel an order as `by_user_id` (its owner, or staff). Returns the Order."""

    event_type = "ordering.CancelOrder"

    order_id: int
    by_user_id: int
    # Longer reasons are cut, as the order keeps only this much.
    reason: Annotated[str, AfterValidator(lambda text: text[:REASON_LENGTH])] = ""
