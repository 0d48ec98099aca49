"""Handlers of the ordering app's commands: thin, the work is in services."""

from typing import Any

from django.contrib.auth.models import User

from mediator import handles
from ordering import services
from ordering.commands import (
    CancelOrder,
    ChargePayment,
    CheckOutDemoOrder,
    PlaceDemoOrder,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
)
from ordering.models import Order


def _user(user_id: int) -> User:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise services.OrderError(f"There is no active user #{user_id}.")
    return user


@handles(PlaceDemoOrder)
def place_demo_order(command: PlaceDemoOrder) -> Order:
    return services.place_demo_order(
        owner=_user(command.owner_id), sku=command.sku, quantity=command.quantity
    )


@handles(CheckOutDemoOrder)
def check_out_demo_order(command: CheckOutDemoOrder) -> Order:
    return services.check_out_demo(
        owner=_user(command.owner_id),
        sku=command.sku,
        quantity=command.quantity,
        payment_token=command.payment_token,
        ship_to=command.ship_to,
    )


@handles(CancelOrder)
def cancel_order(command: CancelOrder) -> Order:
    return services.cancel_order(
        order_id=command.order_id, by=_user(command.by_user_id), reason=command.reason
    )


@handles(ReserveStock)
def reserve_stock(command: ReserveStock) -> None:
    services.reserve_stock(order_id=command.order_id)


@handles(ReleaseStock)
def release_stock(command: ReleaseStock) -> None:
    services.release_stock(order_id=command.order_id)


@handles(ChargePayment)
def charge_payment(command: ChargePayment) -> dict[str, Any]:
    payment = services.charge_order(
        order_id=command.order_id,
        payment_token=command.payment_token,
        idempotency_key=services.payment_key(command.saga_run_id),
    )
    return {"charge_id": payment.charge_id}


@handles(RefundPayment)
def refund_payment(command: RefundPayment) -> None:
    services.refund_order(
        order_id=command.order_id, idempotency_key=services.payment_key(command.saga_run_id)
    )
