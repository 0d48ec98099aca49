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
from ordering.services import LineItem, cancel_order, place_order
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
def test_cancel_action_needs_the_change_permission(client: Client, alice: User) -> None:
    order = place_order(owner=alice, items=[ITEM])
    client.force_login(staff_with("view_order"))
    changelist = client.get(reverse("admin:ordering_order_changelist"))
    assert changelist.status_code == 200
    assert "cancel_selected" not in changelist.content.decode()
    client.post(
        reverse("admin:ordering_order_changelist"),
        {"action": "cancel_selected", "_selected_action": [order.pk]},
    )
    order.refresh_from_db()
    assert order.status == OrderStatus.PLACED


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
