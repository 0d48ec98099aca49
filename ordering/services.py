"""Where an order changes state. The command handlers (ordering.handlers) call
these; so do management commands and the demo seeder."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from mediator import publish, send_after_commit, start_saga
from ordering import payment_provider
from ordering.commands import RefundPayment
from ordering.events import OrderCancelled, OrderPlaced
from ordering.models import (
    Order,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentStatus,
    StockItem,
    StockReservation,
)


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


class OutOfStock(OrderError):
    pass


class PaymentDeclined(OrderError):
    pass


def _total(items: list[LineItem]) -> Decimal:
    if not items:
        raise OrderError("An order needs at least one item.")
    for item in items:
        if item.quantity <= 0:
            raise OrderError(f"Quantity of {item.name} must be positive.")
        if item.unit_price < 0:
            raise OrderError(f"Price of {item.name} cannot be negative.")
    return sum((item.unit_price * item.quantity for item in items), Decimal("0.00"))


def place_order(*, owner: User, items: list[LineItem]) -> Order:
    """An unpaid order: OrderPlaced fans out to shipping and notifications."""
    total = _total(items)
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


def _demo_line(sku: str, quantity: int) -> LineItem:
    from ordering.catalogue import DEMO_CATALOGUE

    product = DEMO_CATALOGUE.get(sku)
    if product is None:
        raise OrderError(f"There is no product {sku!r} in the demo shop.")
    if not 1 <= quantity <= 10:
        raise OrderError("Choose a quantity from 1 to 10.")
    return LineItem(product.sku, product.name, quantity, product.unit_price)


def place_demo_order(*, owner: User, sku: str, quantity: int) -> Order:
    """The "quick demo order" form: one unpaid line from the demo catalogue."""
    return place_order(owner=owner, items=[_demo_line(sku, quantity)])


def check_out(*, owner: User, items: list[LineItem], payment_token: str, ship_to: str) -> Order:
    """A paid order: saved as "checking out", and the checkout saga started in
    the same transaction (ordering.sagas.Checkout reserves the stock, charges
    the card, books the shipment and sends the confirmation, or undoes them)."""
    from ordering.sagas import Checkout

    total = _total(items)
    ship_to = ship_to.strip().upper()
    if len(ship_to) != 2 or not ship_to.isalpha():
        raise OrderError("Choose the country to ship to.")
    if not payment_token:
        raise OrderError("Choose a card to pay with.")
    with transaction.atomic():
        order = Order.objects.create(
            owner=owner, total=total, status=OrderStatus.PENDING, ship_to=ship_to
        )
        OrderItem.objects.bulk_create(
            OrderItem(
                order=order, sku=i.sku, name=i.name, quantity=i.quantity, unit_price=i.unit_price
            )
            for i in items
        )
        order.checkout_run_id = start_saga(
            Checkout,
            {
                "order_id": order.pk,
                "customer_email": owner.email,
                "total": str(total),
                "payment_token": payment_token,
                "ship_to": ship_to,
            },
        )
        order.save(update_fields=["checkout_run_id"])
    return order


def check_out_demo(
    *, owner: User, sku: str, quantity: int, payment_token: str, ship_to: str
) -> Order:
    """The "buy" form: one line from the demo catalogue, paid by a test card."""
    return check_out(
        owner=owner, items=[_demo_line(sku, quantity)], payment_token=payment_token, ship_to=ship_to
    )


def restock(*, sku: str, at_least: int) -> StockItem:
    """Top the shelf up to `at_least` units (the demo seeder)."""
    item, _ = StockItem.objects.get_or_create(sku=sku)
    if item.on_hand < at_least:
        StockItem.objects.filter(pk=item.pk).update(on_hand=at_least)
        item.refresh_from_db()
    return item


def reserve_stock(*, order_id: int) -> None:
    """Take the order's items off the shelf, all or none (OutOfStock)."""
    order = Order.objects.get(pk=order_id)
    if StockReservation.objects.filter(order=order).exists():
        return
    for item in order.items.order_by("sku"):  # one order of locks: no deadlocks
        taken = StockItem.objects.filter(sku=item.sku, on_hand__gte=item.quantity).update(
            on_hand=F("on_hand") - item.quantity
        )
        if not taken:
            raise OutOfStock(f"{item.name} is out of stock ({item.quantity} wanted).")
    StockReservation.objects.create(order=order)


def release_stock(*, order_id: int) -> None:
    """Put a reservation's items back on the shelf, once."""
    reservation = StockReservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None or reservation.released_at:
        return
    for item in reservation.order.items.order_by("sku"):
        StockItem.objects.filter(sku=item.sku).update(on_hand=F("on_hand") + item.quantity)
    reservation.released_at = timezone.now()
    reservation.save(update_fields=["released_at"])


def payment_key(saga_run_id: str) -> str:
    return f"checkout-{saga_run_id}"


def charge_order(*, order_id: int, payment_token: str, idempotency_key: str) -> Payment:
    """Charge the order's total. The provider is called with the same key on
    every retry, so a charge made before a crash is found, not made again."""
    order = Order.objects.get(pk=order_id)
    existing = Payment.objects.filter(order=order).first()
    if existing is not None:
        return existing
    try:
        charge = payment_provider.charge(
            idempotency_key=idempotency_key,
            amount=order.total,
            token=payment_token,
            reference=f"order-{order.pk}",
        )
    except payment_provider.CardDeclined as declined:
        raise PaymentDeclined(f"Your card was declined ({declined.charge_id}).") from None
    return Payment.objects.create(
        order=order, charge_id=charge.id, idempotency_key=idempotency_key, amount=charge.amount
    )


def refund_order(*, order_id: int, idempotency_key: str) -> None:
    """Refund what the provider charged under this key, once. Also refunds a
    charge our records never saw (a checkout step that failed after the
    provider took the money, or whose process died before it committed)."""
    charge = payment_provider.refund(idempotency_key=idempotency_key)
    if charge is not None:
        Payment.objects.filter(order_id=order_id, status=PaymentStatus.CAPTURED).update(
            status=PaymentStatus.REFUNDED, refunded_at=timezone.now()
        )


def checkout_completed(*, order_id: int) -> None:
    Order.objects.filter(pk=order_id, status=OrderStatus.PENDING).update(
        status=OrderStatus.PLACED, updated_at=timezone.now()
    )


def checkout_failed(*, order_id: int, reason: str) -> None:
    Order.objects.filter(pk=order_id, status=OrderStatus.PENDING).update(
        status=OrderStatus.FAILED, checkout_error=reason[:300], updated_at=timezone.now()
    )


def _give_back(order: Order) -> None:
    """A paid order is cancelled: its stock goes back to the shelf now, and
    its payment is refunded by a task once this commits (the provider is
    outside the transaction, and may not answer at once)."""
    release_stock(order_id=order.pk)
    send_after_commit(RefundPayment(order_id=order.pk, saga_run_id=str(order.checkout_run_id)))


CANCEL_PERMISSION = "ordering.cancel_order"


def may_cancel_any_order(user: User) -> bool:
    """Operators cancel others' orders by permission, not by being staff."""
    return user.has_perm(CANCEL_PERMISSION)


def cancel_order(*, order_id: int, by: User, reason: str = "") -> Order:
    """Cancel an order and publish OrderCancelled, in one transaction.

    Only the owner or a user with the ordering.cancel_order permission may
    cancel (others are told the order does not exist). The row is locked, so
    two concurrent cancels cannot both succeed.
    """
    with transaction.atomic():
        locked = Order.objects.select_for_update().filter(pk=order_id).first()
        if locked is None or not (locked.owner_id == by.pk or may_cancel_any_order(by)):
            raise OrderNotFound(f"Order #{order_id} does not exist.")
        if locked.status == OrderStatus.PENDING:
            raise OrderError(f"Order #{locked.pk} is still being checked out; try again shortly.")
        if locked.status == OrderStatus.FAILED:
            raise OrderError(f"Order #{locked.pk} was never placed: its checkout failed.")
        if locked.status == OrderStatus.CANCELLED:
            raise OrderError(f"Order #{locked.pk} is already cancelled.")
        if locked.status == OrderStatus.SHIPPED:
            raise OrderError(
                f"Order #{locked.pk} has already shipped and can no longer be cancelled."
            )
        if locked.checkout_run_id is not None:
            _give_back(locked)
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
