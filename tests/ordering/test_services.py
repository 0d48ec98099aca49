from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction

from mediator.exceptions import PublishOutsideTransaction
from mediator.testing import Outbox
from ordering.events import OrderCancelled, OrderPlaced
from ordering.models import Order, OrderStatus
from ordering.services import LineItem, OrderError, OrderNotFound, cancel_order, place_order

ITEM = LineItem(sku="MUG-01", name="Mug", quantity=2, unit_price=Decimal("12.50"))


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", "alice@example.com", "pw")


def test_place_order_totals_items_and_publishes_order_placed(
    mediator_outbox: Outbox, alice: User
) -> None:
    order = place_order(owner=alice, items=[ITEM, ITEM])
    assert order.total == Decimal("50.00")
    assert mediator_outbox.messages == [
        OrderPlaced(
            order_id=order.pk, customer_id=alice.pk,
            customer_email="alice@example.com", total=Decimal("50.00"),
        )
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([], "at least one item"),
        ([LineItem("X", "Thing", 0, Decimal("1"))], "Quantity of Thing must be positive"),
        ([LineItem("X", "Thing", 1, Decimal("-1"))], "cannot be negative"),
    ],
)
def test_place_order_refuses_bad_items(
    mediator_outbox: Outbox, alice: User, items: list, error: str
) -> None:
    with pytest.raises(OrderError, match=error):
        place_order(owner=alice, items=items)
    assert not Order.objects.exists()
    mediator_outbox.assert_nothing_published()


def test_cancel_changes_status_and_publishes_once(mediator_outbox: Outbox, alice: User) -> None:
    order = place_order(owner=alice, items=[ITEM])
    cancel_order(order_id=order.pk, by=alice, reason="changed my mind")
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert order.cancel_reason == "changed my mind"
    cancelled = mediator_outbox.one(OrderCancelled, order_id=order.pk)
    assert (cancelled.reason, cancelled.cancelled_by_id) == ("changed my mind", alice.pk)


def test_double_cancel_is_refused_and_publishes_nothing_more(
    mediator_outbox: Outbox, alice: User
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    cancel_order(order_id=order.pk, by=alice)
    with (
        mediator_outbox.capture() as second,
        pytest.raises(OrderError, match=f"Order #{order.pk} is already cancelled."),
    ):
        cancel_order(order_id=order.pk, by=alice)
    second.assert_nothing_published()
    mediator_outbox.one(OrderCancelled)


@pytest.mark.django_db
def test_shipped_order_cannot_be_cancelled(alice: User) -> None:
    order = place_order(owner=alice, items=[ITEM])
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SHIPPED)
    with pytest.raises(OrderError, match="has already shipped"):
        cancel_order(order_id=order.pk, by=alice)


@pytest.mark.django_db
def test_someone_elses_order_is_reported_as_missing(alice: User) -> None:
    order = place_order(owner=alice, items=[ITEM])
    mallory = User.objects.create_user("mallory", "m@example.com", "pw")
    with pytest.raises(OrderNotFound, match=f"Order #{order.pk} does not exist."):
        cancel_order(order_id=order.pk, by=mallory)


@pytest.mark.django_db
def test_being_staff_is_not_enough_to_cancel_someone_elses_order(
    mediator_outbox: Outbox, alice: User
) -> None:
    """The right is ordering.cancel_order, not is_staff."""
    order = place_order(owner=alice, items=[ITEM])
    staff = User.objects.create_user("staff", "s@example.com", "pw", is_staff=True)
    with pytest.raises(OrderNotFound):
        cancel_order(order_id=order.pk, by=staff)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PLACED
    staff.user_permissions.add(Permission.objects.get(codename="cancel_order"))
    staff = User.objects.get(pk=staff.pk)  # has_perm caches the permissions it read
    assert cancel_order(order_id=order.pk, by=staff).status == OrderStatus.CANCELLED
    mediator_outbox.one(OrderCancelled, cancelled_by_id=staff.pk)


@pytest.mark.django_db(transaction=True)
def test_publish_outside_a_transaction_is_a_clear_error(
    mediator_outbox: Outbox, alice: User
) -> None:
    from mediator import publish

    event = OrderPlaced(order_id=1, customer_id=alice.pk, customer_email="", total=Decimal(1))
    with pytest.raises(PublishOutsideTransaction, match=r"transaction\.atomic\(\)"):
        publish(event)
    mediator_outbox.assert_nothing_published()
    with transaction.atomic():
        publish(event)
    assert mediator_outbox.messages == [event]
