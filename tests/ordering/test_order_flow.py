"""The reference flow end to end: web request → events → shipping and notifications,
with a real worker."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mediator.models import PoisonedTask
from notifications.models import SentEmail
from ordering.models import Order
from ordering.services import LineItem, place_order
from shipping.models import Shipment, ShipmentStatus
from tests.support import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
ITEM = LineItem(sku="MUG-01", name="Mug", quantity=1, unit_price=Decimal("12.50"))


def placed_and_shipped_pending(alice: User) -> Order:
    order = place_order(owner=alice, items=[ITEM])
    wait_for(lambda: Shipment.objects.filter(order_id=order.pk).exists(), message="shipment")
    wait_for(
        lambda: SentEmail.objects.filter(kind="order_confirmation", sent_at__isnull=False).exists(),
        message="the confirmation to be sent",
    )
    return order


def test_placing_then_cancelling_on_the_web_cancels_shipment_and_mails_customer(
    celery_worker: Worker, client: Client
) -> None:
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    order = placed_and_shipped_pending(alice)
    confirmation = SentEmail.objects.get(kind="order_confirmation")
    assert confirmation.recipient == "alice@example.com"
    assert confirmation.subject == f"Your order #{order.pk} is confirmed"

    client.force_login(alice)
    client.post(reverse("orders:order-cancel", args=[order.pk]), {"reason": "too slow"})
    wait_for(
        lambda: Shipment.objects.filter(
            order_id=order.pk, status=ShipmentStatus.CANCELLED
        ).exists(),
        message="the shipment to be cancelled",
    )
    mail = wait_for(
        lambda: SentEmail.objects.filter(kind="order_cancellation", sent_at__isnull=False).first(),
        message="the e-mail to be sent",
    )
    assert mail.subject == f"Your order #{order.pk} is cancelled"
    assert "Reason: too slow." in mail.body
    assert SentEmail.objects.count() == 2
    assert list(PoisonedTask.objects.values_list("handler", "exception")) == []


def test_cancelling_an_already_dispatched_shipment_is_poisoned_with_the_reason(
    celery_worker: Worker, client: Client
) -> None:
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    order = placed_and_shipped_pending(alice)
    Shipment.objects.filter(order_id=order.pk).update(
        status=ShipmentStatus.DISPATCHED, dispatched_at=timezone.now()
    )
    client.force_login(alice)
    client.post(reverse("orders:order-cancel", args=[order.pk]))
    row = wait_for(
        lambda: PoisonedTask.objects.filter(handler="shipping.handlers.cancel_shipment").first(),
        message="the poisoned cancellation",
    )
    assert row.attempts == 1
    assert "was already dispatched" in row.exception
    assert "cannot be cancelled" in row.exception
    # The customer is still told: the other handler is not blocked.
    wait_for(lambda: SentEmail.objects.filter(kind="order_cancellation").exists(), message="mail")
