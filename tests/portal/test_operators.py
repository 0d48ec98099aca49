"""The operators' side: the order admin, its cancel action, the dashboard and
the poisoned-task links, with every refusal."""

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mediator.delivery.mapping import wire_message
from mediator.models import InboxRecord, OutboxMessage, OutboxStatus, PoisonedTask
from ordering.models import Order, OrderStatus
from ordering.services import LineItem, cancel_order, check_out, place_order
from tests.support import flash

ITEM = LineItem(sku="MUG-01", name="Mug", quantity=1, unit_price=Decimal("12.50"))
DASHBOARD = "mediator-dashboard"


@pytest.fixture
def operator(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw"))
    return client


def staff_with(*codenames: str) -> User:
    user = User.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.mark.django_db
def test_cancel_action_cancels_each_order_it_can_and_says_why_not_the_others(
    operator: Client, alice: User
) -> None:
    open_a, open_b, done = (place_order(owner=alice, items=[ITEM]) for _ in range(3))
    cancel_order(order_id=done.pk, by=alice)
    shipped = place_order(owner=alice, items=[ITEM])
    Order.objects.filter(pk=shipped.pk).update(status=OrderStatus.SHIPPED)
    response = operator.post(
        reverse("admin:ordering_order_changelist"),
        {
            "action": "cancel_selected",
            "_selected_action": [open_a.pk, open_b.pk, done.pk, shipped.pk],
        },
    )
    assert response.status_code == 302
    assert flash(response) == [
        "Cancelled 2 order(s).",
        f"Not cancelled (2): Order #{done.pk} is already cancelled. "
        f"Order #{shipped.pk} has already shipped and can no longer be cancelled.",
    ]
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses[open_a.pk] == statuses[open_b.pk] == OrderStatus.CANCELLED
    assert statuses[shipped.pk] == OrderStatus.SHIPPED
    # Through the service: one OrderCancelled per cancelled order, no more.
    assert OutboxMessage.objects.filter(event_type="ordering.OrderCancelled").count() == 3


@pytest.mark.django_db
def test_cancel_action_needs_the_cancel_permission_not_just_change(
    client: Client, alice: User
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    client.force_login(staff_with("view_order", "change_order"))
    changelist = client.get(reverse("admin:ordering_order_changelist"))
    assert changelist.status_code == 200
    assert "cancel_selected" not in changelist.content.decode()
    client.post(
        reverse("admin:ordering_order_changelist"),
        {"action": "cancel_selected", "_selected_action": [order.pk]},
    )
    order.refresh_from_db()
    assert order.status == OrderStatus.PLACED
    assert cancelled_events() == 0


def cancelled_events() -> int:
    return OutboxMessage.objects.filter(event_type="ordering.OrderCancelled").count()


def change_form_post(order: Order, **fields: str) -> dict[str, str | int]:
    """A change-form POST the admin accepts (its inline's management form
    included), with `fields` as an operator might type them."""
    data: dict[str, str | int] = {
        "items-TOTAL_FORMS": order.items.count(), "items-INITIAL_FORMS": order.items.count(),
        "items-MIN_NUM_FORMS": 0, "items-MAX_NUM_FORMS": 1000, "_save": "Save",
    }  # fmt: skip
    for n, item in enumerate(order.items.order_by("pk")):
        data[f"items-{n}-id"] = item.pk
        data[f"items-{n}-order"] = order.pk
    return {**data, **fields}


@pytest.mark.django_db
def test_the_change_form_cannot_cancel_or_borrow_another_orders_checkout(
    operator: Client, alice: User
) -> None:
    """Typing "cancelled" would refund, restock and tell no one; another
    order's run id would show its customer's checkout on this order's page."""
    order = place_order(owner=alice, items=[ITEM])
    bob = User.objects.create_user("bob", "bob@example.com", "pw")
    foreign = check_out(owner=bob, items=[ITEM], payment_token="tok_visa", ship_to="NL")
    assert foreign.checkout_run_id is not None
    response = operator.post(
        reverse("admin:ordering_order_change", args=[order.pk]),
        change_form_post(
            order, status=OrderStatus.CANCELLED, checkout_run_id=str(foreign.checkout_run_id),
            cancel_reason="typed", checkout_error="typed", ship_to="US",
        ),
    )  # fmt: skip
    assert response.status_code == 302  # accepted: the fields are simply not the form's
    order.refresh_from_db()
    assert (order.status, order.checkout_run_id, order.cancel_reason, order.checkout_error) == (
        OrderStatus.PLACED, None, "", "",
    )  # fmt: skip
    assert order.ship_to == ""
    assert order.items.count() == 1
    assert cancelled_events() == 0
    page = operator.get(reverse("admin:ordering_order_change", args=[order.pk])).content.decode()
    assert 'name="status"' not in page
    assert 'name="checkout_run_id"' not in page


@pytest.mark.django_db
def test_staff_without_the_cancel_permission_get_403_and_the_order_stays(
    client: Client, alice: User
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    client.force_login(staff_with("view_order", "change_order"))
    page = client.get(reverse("admin:ordering_order_change", args=[order.pk])).content.decode()
    assert "Cancel this order" not in page
    response = client.post(reverse("admin:ordering_order_cancel", args=[order.pk]))
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == OrderStatus.PLACED
    assert cancelled_events() == 0
    # Nor through the customer's page: someone else's order is not there.
    assert client.post(reverse("orders:order-cancel", args=[order.pk])).status_code == 404
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PLACED


@pytest.mark.django_db
def test_the_cancel_button_goes_through_the_service_and_publishes_order_cancelled(
    client: Client, alice: User
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    clerk = staff_with("view_order", "cancel_order")
    client.force_login(clerk)
    change = reverse("admin:ordering_order_change", args=[order.pk])
    assert "Cancel this order" in client.get(change).content.decode()
    cancel = reverse("admin:ordering_order_cancel", args=[order.pk])
    assert client.get(cancel).status_code == 405
    response = client.post(cancel)
    assert (response.status_code, response["Location"]) == (302, change)
    assert flash(response) == [f"Cancelled order #{order.pk}."]
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert order.cancel_reason == "Cancelled by an operator"
    event = OutboxMessage.objects.get(event_type="ordering.OrderCancelled")
    assert event.payload["cancelled_by_id"] == clerk.pk
    again = client.post(cancel)
    assert flash(again)[-1] == f"Order #{order.pk} is already cancelled."
    assert cancelled_events() == 1


@pytest.mark.django_db
def test_order_change_page_shows_the_other_apps_view_of_the_order(
    operator: Client, alice: User
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    page = operator.get(reverse("admin:ordering_order_change", args=[order.pk])).content.decode()
    assert "Events and handlers" in page
    assert "ordering.OrderPlaced" in page
    assert "create_shipment: waiting" in page


@pytest.mark.django_db
def test_dashboard_is_for_staff_only(client: Client, alice: User) -> None:
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    client.force_login(alice)  # a customer, not staff
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_dashboard_counts_lag_events_and_deliveries_per_handler(
    operator: Client, alice: User
) -> None:
    order = place_order(owner=alice, items=[ITEM])  # pending: test transactions never commit
    placed = OutboxMessage.objects.get()
    OutboxMessage.objects.filter(pk=placed.pk).update(
        created_at=timezone.now() - timedelta(seconds=30)
    )
    InboxRecord.objects.create(
        event_id=placed.event_id, handler="shipping.handlers.create_shipment"
    )
    PoisonedTask.objects.create(
        event_id=uuid.uuid4(), handler="notifications.handlers.send_order_confirmation",
        exception="SMTPRecipientsRefused", payload={"payload": {"order_id": order.pk}},
    )  # fmt: skip
    response = operator.get(reverse(DASHBOARD))
    assert response.status_code == 200
    context = response.context
    assert context["pending"] == 1
    assert 29 <= context["lag_seconds"] < 60
    assert context["events_per_type"] == {"ordering.OrderPlaced": 1}
    counts = {h.handler: (h.done, h.retrying, h.poisoned) for h in context["handlers"]}
    assert counts["shipping.handlers.create_shipment"] == (1, 0, 0)
    assert counts["notifications.handlers.send_order_confirmation"] == (0, 0, 1)
    assert context["event_map"]["ordering.OrderCancelled"] == [
        "shipping.handlers.cancel_shipment",
        "notifications.handlers.send_cancellation_notice",
    ]
    assert "flowchart LR" in response.content.decode()


@pytest.mark.django_db
def test_poisoned_task_links_to_its_event_its_order_and_flower(
    operator: Client, alice: User, settings
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    event = OutboxMessage.objects.get()
    OutboxMessage.objects.filter(pk=event.pk).update(status=OutboxStatus.DISPATCHED)
    row = PoisonedTask.objects.create(
        event_id=event.event_id, event_type=event.event_type, task_id="t-1",
        handler="notifications.handlers.send_order_confirmation", exception="E",
        payload=wire_message(event),
    )  # fmt: skip
    page = operator.get(
        reverse("admin:mediator_poisonedtask_change", args=[row.pk])
    ).content.decode()
    assert reverse("admin:mediator_outboxmessage_change", args=[event.pk]) in page
    assert reverse("admin:ordering_order_change", args=[order.pk]) in page
    flower = settings.MEDIATOR["FLOWER_URL"].rstrip("/")
    assert f'href="{flower}/task/t-1"' in page
    listing = operator.get(reverse("admin:mediator_poisonedtask_changelist")).content.decode()
    assert reverse("admin:ordering_order_change", args=[order.pk]) in listing  # on each row too


def test_check_deploy_passes_with_production_settings(tmp_path: Path) -> None:
    import os
    import secrets
    import subprocess
    import sys

    from tests.support import ROOT

    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "shop.example.com",
        # A deployment that has run its migrations (mediator.W003 warns otherwise).
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
