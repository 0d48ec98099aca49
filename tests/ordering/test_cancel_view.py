from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from mediator.models import OutboxMessage
from ordering.models import Order, OrderStatus
from ordering.services import LineItem, place_order
from tests.support import flash

ITEM = LineItem(sku="MUG-01", name="Mug", quantity=1, unit_price=Decimal("12.50"))


@pytest.fixture
def order() -> Order:
    owner = User.objects.create_user("alice", "alice@example.com", "pw")
    return place_order(owner=owner, items=[ITEM])


def url(order_id: int) -> str:
    return reverse("orders:order-cancel", args=[order_id])


def cancelled_events() -> int:
    return OutboxMessage.objects.filter(event_type="ordering.OrderCancelled").count()


@pytest.mark.django_db
def test_owner_cancels_and_is_told_so(client: Client, order: Order) -> None:
    client.force_login(order.owner)
    response = client.post(url(order.pk), {"reason": "too slow"})
    assert response.status_code == 302
    assert response["Location"] == reverse("orders:order-detail", args=[order.pk])
    assert flash(response) == [
        f"Order #{order.pk} is cancelled. We are stopping the shipment and will e-mail you."
    ]
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert cancelled_events() == 1


@pytest.mark.django_db
def test_double_cancel_says_so_and_publishes_no_new_event(client: Client, order: Order) -> None:
    client.force_login(order.owner)
    client.post(url(order.pk), follow=True)  # shows (and consumes) the first message
    response = client.post(url(order.pk))
    assert flash(response) == [f"Order #{order.pk} is already cancelled."]
    assert cancelled_events() == 1


@pytest.mark.django_db
def test_stranger_gets_404_and_nothing_changes(client: Client, order: Order) -> None:
    client.force_login(User.objects.create_user("mallory", "m@example.com", "pw"))
    assert client.post(url(order.pk)).status_code == 404
    assert client.get(reverse("orders:order-detail", args=[order.pk])).status_code == 404
    order.refresh_from_db()
    assert order.status == OrderStatus.PLACED
    assert cancelled_events() == 0


@pytest.mark.django_db
def test_missing_order_is_404(client: Client, order: Order) -> None:
    client.force_login(order.owner)
    assert client.post(url(order.pk + 1000)).status_code == 404


@pytest.mark.django_db
def test_get_is_405(client: Client, order: Order) -> None:
    client.force_login(order.owner)
    assert client.get(url(order.pk)).status_code == 405
    assert cancelled_events() == 0


@pytest.mark.django_db
def test_anonymous_is_sent_to_log_in(client: Client, order: Order) -> None:
    response = client.post(url(order.pk))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert cancelled_events() == 0


@pytest.mark.django_db
def test_post_without_csrf_token_is_refused(order: Order) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(order.owner)
    assert client.post(url(order.pk)).status_code == 403
    assert cancelled_events() == 0


@pytest.mark.django_db
def test_a_nul_character_in_the_reason_is_dropped_not_a_server_error(
    client: Client, order: Order
) -> None:
    """PostgreSQL refuses NUL in text and JSON: it used to be a 500 there."""
    client.force_login(order.owner)
    response = client.post(url(order.pk), {"reason": "too\x00 slow"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "too slow")
    event = OutboxMessage.objects.get(event_type="ordering.OrderCancelled")
    assert event.payload["reason"] == "too slow"
