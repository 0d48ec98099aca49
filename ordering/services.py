"""Where an order changes state. The command handlers (ordering.handlers) call
these; so do management commands and the demo seeder."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from mediator import publish
from ordering.events import OrderCancelled, OrderPlaced
from ordering.models import Order, OrderItem, OrderStatus


@dataclass(frozen=True)
class LineItem:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


class OrderError(Exception):
    """A domain refusal with a message fit to show the customer."""


class OrderNotFound(OrderError):
    pass


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
        publish(
            OrderPlaced(
                order_id=order.pk,
                customer_id=owner.pk,
                customer_email=owner.email,
                total=total,
            )
        )
    return order


def place_demo_order(*, owner: User, sku: str, quantity: int) -> Order:
    """The "try it" form: one line from the demo catalogue."""
    from ordering.catalogue import DEMO_CATALOGUE

    product = DEMO_CATALOGUE.get(sku)
    if product is None:
        raise OrderError(f"There is no product {sku!r} in the demo shop.")
    if not 1 <= quantity <= 10:
        raise OrderError("Choose a quantity from 1 to 10.")
    return place_order(
        owner=owner,
        items=[LineItem(product.sku, product.name, quantity, product.unit_price)],
    )


def cancel_order(*, order_id: int, by: User, reason: str = "") -> Order:
    """Cancel an order and publish OrderCancelled, in one transaction.

    Only the owner or staff may cancel (others are told the order does not
    exist). The row is locked, so two concurrent cancels cannot both succeed.
    """
    with transaction.atomic():
        locked = Order.objects.select_for_update().filter(pk=order_id).first()
        if locked is None or not (locked.owner_id == by.pk or by.is_staff):
            raise OrderNotFound(f"Order #{order_id} does not exist.")
        if locked.status == OrderStatus.CANCELLED:
            raise OrderError(f"Order #{locked.pk} is already cancelled.")
        if locked.status == OrderStatus.SHIPPED:
            raise OrderError(
                f"Order #{locked.pk} has already shipped and can no longer be cancelled."
            )
        locked.status = OrderStatus.CANCELLED
        locked.cancelled_at = timezone.now()
        locked.cancel_reason = reason[:200]
        locked.save(update_fields=["status", "cancelled_at", "cancel_reason", "updated_at"])
        publish(
            OrderCancelled(
                order_id=locked.pk,
                customer_id=locked.owner_id,
                customer_email=locked.owner.email,
                reason=locked.cancel_reason,
                cancelled_by_id=by.pk,
            )
        )
    return locked
