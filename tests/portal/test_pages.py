"""Customer pages without a worker: who sees what, and bad input."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ordering.models import Order
from ordering.services import LineItem, place_order
from tests.support import flash

ITEM = LineItem(sku="MUG-01", name="Mug", quantity=1, unit_price=Decimal("12.50"))


@pytest.fixture
def order(alice: User) -> Order:
    return place_order(owner=alice, items=[ITEM])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("orders:order-list", "get"),
        ("orders:order-detail", "get"),
        ("orders:order-live", "get"),
        ("orders:order-cancel", "post"),
        ("orders:order-place-demo", "post"),
    ],
)
def test_anonymous_users_are_sent_to_log_in(
    client: Client, order: Order, name: str, method: str
) -> None:
    args = [] if name in ("orders:order-list", "orders:order-place-demo") else [order.pk]
    url = reverse(name, args=args)
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.django_db
def test_order_list_shows_only_my_orders_newest_first_ten_per_page(
    client: Client, alice: User
) -> None:
    mine = [place_order(owner=alice, items=[ITEM]).pk for _ in range(12)]
    theirs = place_order(owner=User.objects.create_user("bob", "b@example.com", "pw"), items=[ITEM])
    client.force_login(alice)
    first = client.get(reverse("orders:order-list"))
    second = client.get(reverse("orders:order-list") + "?page=2")
    assert [o.pk for o in first.context["page"]] == mine[::-1][:10]
    assert [o.pk for o in second.context["page"]] == mine[::-1][10:]
    assert f">#{theirs.pk}<" not in first.content.decode() + second.content.decode()
    assert "Page 1 of 2" in first.content.decode()


@pytest.mark.django_db
def test_demo_order_form_places_an_order_and_shows_it(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.post(reverse("orders:order-place-demo"), {"sku": "PEN-03", "quantity": "2"})
    order = Order.objects.get(owner=alice)
    assert response["Location"] == reverse("orders:order-detail", args=[order.pk])
    assert flash(response) == [f"Order #{order.pk} is placed."]
    assert order.total == Decimal("68.00")
    assert [(i.sku, i.quantity) for i in order.items.all()] == [("PEN-03", 2)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sku": "NOPE", "quantity": "1"}, "There is no product 'NOPE' in the demo shop."),
        ({"sku": "MUG-01", "quantity": "0"}, "Choose a quantity from 1 to 10."),
        ({"sku": "MUG-01", "quantity": "11"}, "Choose a quantity from 1 to 10."),
        ({"sku": "MUG-01", "quantity": "many"}, "Choose a quantity from 1 to 10."),
        ({}, "There is no product '' in the demo shop."),
    ],
)
def test_demo_order_form_refuses_bad_input_and_places_nothing(
    client: Client, alice: User, data: dict[str, str], message: str
) -> None:
    client.force_login(alice)
    response = client.post(reverse("orders:order-place-demo"), data)
    assert response["Location"] == reverse("orders:order-list")
    assert flash(response) == [message]
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_state_changing_views_refuse_get(client: Client, order: Order) -> None:
    client.force_login(order.owner)
    assert client.get(reverse("orders:order-place-demo")).status_code == 405
    assert client.get(reverse("orders:order-cancel", args=[order.pk])).status_code == 405


@pytest.mark.django_db
def test_demo_order_form_needs_the_csrf_token(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("orders:order-place-demo"), {"sku": "MUG-01", "quantity": "1"})
    assert response.status_code == 403
    assert not Order.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["orders:order-detail", "orders:order-live"])
def test_someone_elses_order_is_404(client: Client, order: Order, name: str) -> None:
    client.force_login(User.objects.create_user("mallory", "m@example.com", "pw"))
    assert client.get(reverse(name, args=[order.pk])).status_code == 404
    assert client.get(reverse(name, args=[order.pk + 1000])).status_code == 404


@pytest.mark.django_db
def test_order_page_shows_items_cancel_step_and_a_timeline_not_yet_settled(
    client: Client, order: Order
) -> None:
    client.force_login(order.owner)
    page = client.get(reverse("orders:order-detail", args=[order.pk])).content.decode()
    assert "Mug" in page
    assert "12.50" in page
    assert "Cancel this order…" in page
    assert f"Yes, cancel order #{order.pk}" in page
    assert 'data-event-type="ordering.OrderPlaced"' in page
    # A test transaction never commits: the event waits for the broker hand-over.
    assert 'data-handler="create_shipment" data-state="waiting"' in page
    live = client.get(reverse("orders:order-live", args=[order.pk]))
    assert live["X-Live-Settled"] == "false"
    assert live["Cache-Control"] == "no-store"
    assert "Refresh" in live.content.decode()  # the no-JavaScript way to update


@pytest.mark.django_db
def test_the_timeline_names_each_events_correlation_and_cause(
    client: Client, alice: User, order: Order
) -> None:
    from mediator.models import OutboxMessage

    client.force_login(alice)
    client.post(
        reverse("orders:order-cancel", args=[order.pk]),
        {"reason": "x"},
        headers={"X-Correlation-ID": "cancel-trail-1"},
    )
    cancelled = OutboxMessage.objects.get(event_type="ordering.OrderCancelled")
    page = client.get(reverse("orders:order-live", args=[order.pk])).content.decode()
    assert (
        f'data-event-id="{cancelled.event_id}" data-correlation-id="cancel-trail-1" '
        f'data-causation-id="{cancelled.causation_id}"'
    ) in page
    assert cancelled.causation_id  # the CancelOrder command the page sent
