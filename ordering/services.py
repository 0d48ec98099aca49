"""Where an order changes state. Views, admin actions and commands call these."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction

from ordering.models import Order, OrderItem


@dataclass(frozen=True)
class LineItem:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


class OrderError(Exception):
    """A domain refusal with a message fit to show the customer."""


def place_order(*, owner: User, items: list[LineItem]) -> Order:
    if not items:
        raise OrderError("An order needs at least one item.")
    for item in items:
        if item.quantity <= 0:
            raise OrderError(f"Quantity of {item.name} must be positive.")
        if item.unit_price < 0:
            raise OrderError(f"Price of {item.name} cannot be negative.")
    total = sum((item.unit_price * item.quantity for item in items), Decimal("0.00"))
    with transaction.atomic():
        order = Order.objects.create(owner=owner, total=total)
        OrderItem.objects.bulk_create(
            OrderItem(
                order=order,
                sku=item.sku,
                name=item.name,
                quantity=item.quantity,
                unit_price=item.unit_price,
            )
            for item in items
        )
    return order
