"""Handlers of the ordering app's commands: thin, the work is in services."""

from django.contrib.auth.models import User

from mediator import handles
from ordering import services
from ordering.commands import CancelOrder, PlaceDemoOrder
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


@handles(CancelOrder)
def cancel_order(command: CancelOrder) -> Order:
    return services.cancel_order(
        order_id=command.order_id, by=_user(command.by_user_id), reason=command.reason
    )
