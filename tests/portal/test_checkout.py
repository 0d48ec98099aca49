"""The "Buy" form: a paid order starts the checkout saga, or is refused with
a message and leaves nothing behind."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from mediator.models import OutboxMessage, SagaRun
from ordering.models import Order, OrderStatus
from ordering.services import OrderError, cancel_order
from tests.support import flash

GOOD = {"sku": "MUG-01", "quantity": "2", "payment_token": "tok_visa", "ship_to": "FR"}


@pytest.mark.django_db
def test_buying_saves_the_order_as_checking_out_and_starts_its_saga(
    client: Client, alice: User
) -> None:
    client.force_login(alice)
    response = client.post(reverse("orders:order-checkout"), GOOD)
    order = Order.objects.get(owner=alice)
    assert response["Location"] == reverse("orders:order-detail", args=[order.pk])
    assert flash(response) == [f"Order #{order.pk} is being checked out."]
    assert (order.status, order.ship_to, str(order.total)) == (OrderStatus.PENDING, "FR", "25.00")
    run = SagaRun.objects.get(pk=str(order.checkout_run_id))
    assert run.data == {
        "order_id": order.pk,
        "customer_email": "alice@example.com",
        "total": "25.00",
        "payment_token": "tok_visa",
        "ship_to": "FR",
    }
    assert OutboxMessage.objects.get().event_type == "saga.ordering.Checkout.reserve_stock"
    page = client.get(reverse("orders:order-detail", args=[order.pk])).content.decode()
    assert 'id="checkout-state" data-state="running"' in page
    assert page.count('class="step"') == 4
    assert 'data-step="charge_payment" data-state="pending"' in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sku": "NOPE"}, "There is no product 'NOPE' in the demo shop."),
        ({"quantity": "0"}, "Choose a quantity from 1 to 10."),
        ({"quantity": "lots"}, "Choose a quantity from 1 to 10."),
        ({"ship_to": ""}, "Choose the country to ship to."),
        ({"ship_to": "F1"}, "Choose the country to ship to."),
        ({"payment_token": ""}, "Choose a card to pay with."),
    ],
)
def test_a_refused_purchase_says_why_and_starts_nothing(
    client: Client, alice: User, changes: dict[str, str], message: str
) -> None:
    client.force_login(alice)
    response = client.post(reverse("orders:order-checkout"), GOOD | changes)
    assert response["Location"] == reverse("orders:order-list")
    assert flash(response) == [message]
    assert not Order.objects.exists()
    assert not SagaRun.objects.exists()
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_buying_needs_a_post_and_a_login(client: Client, alice: User) -> None:
    assert client.post(reverse("orders:order-checkout"), GOOD).status_code == 302
    assert not Order.objects.exists()
    client.force_login(alice)
    assert client.get(reverse("orders:order-checkout")).status_code == 405


@pytest.mark.django_db
def test_an_order_being_checked_out_cannot_be_cancelled_yet(client: Client, alice: User) -> None:
    client.force_login(alice)
    client.post(reverse("orders:order-checkout"), GOOD)
    order = Order.objects.get(owner=alice)
    with pytest.raises(OrderError, match=f"Order #{order.pk} is still being checked out"):
        cancel_order(order_id=order.pk, by=alice)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.FAILED)
    with pytest.raises(OrderError, match=f"Order #{order.pk} was never placed"):
        cancel_order(order_id=order.pk, by=alice)


@pytest.mark.django_db
def test_nul_characters_in_the_form_are_dropped_not_a_server_error(
    client: Client, alice: User
) -> None:
    """PostgreSQL refuses NUL in the saga's JSON data: it used to be a 500 there."""
    client.force_login(alice)
    with_nul = {key: value[:2] + "\x00" + value[2:] for key, value in GOOD.items()}
    with_nul["quantity"] = "2"  # a number: "2\x00" is refused like any other non-number
    response = client.post(reverse("orders:order-checkout"), with_nul)
    order = Order.objects.get(owner=alice)
    assert response["Location"] == reverse("orders:order-detail", args=[order.pk])
    run = SagaRun.objects.get(pk=str(order.checkout_run_id))
    assert (run.data["payment_token"], run.data["ship_to"]) == ("tok_visa", "FR")
