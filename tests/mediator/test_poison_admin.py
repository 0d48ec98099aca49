"""Operators retry and discard poisoned tasks from the admin."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from celery.signals import before_task_publish
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mediator.models import PoisonedTask, PoisonStatus
from tests.mediator.helpers import FLAKY, effects, handled, poisoned, publish_ping, store
from tests.support import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = reverse("admin:mediator_poisonedtask_changelist")


def operator(client: Client, *perms: str, staff: bool = True) -> Client:
    user = User.objects.create_user("op", "op@example.com", "pw", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def logged(row: PoisonedTask) -> list[tuple[str, str]]:
    """The admin history of the row: (user, message), oldest first."""
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(PoisonedTask), object_id=str(row.pk)
    ).order_by("pk")
    names = dict(User.objects.values_list("pk", "username"))
    return [(names[entry.user_id], entry.get_change_message()) for entry in entries]


def act(client: Client, action: str, row: PoisonedTask) -> Any:
    return client.post(CHANGELIST, {"action": action, "_selected_action": [row.pk]}, follow=True)


def test_retry_heals_a_poisoned_task_once_the_cause_is_fixed(
    celery_worker: Worker, client: Client
) -> None:
    event_id, key = publish_ping("broken-until-fixed")
    row = wait_for(lambda: poisoned(event_id, FLAKY), message="the poisoned row")
    assert row.exception == "PermanentError: mail server refuses the recipient"
    assert row.attempts == 1

    store().set(f"fixed:{key}", 1)  # the operator fixes the cause
    operator(client, "view_poisonedtask", "change_poisonedtask")
    response = act(client, "retry", row)
    assert "Re-enqueued 1 task(s)." in response.content.decode()
    row.refresh_from_db()
    assert logged(row) == [("op", f"Retried: re-enqueued as task {row.task_id}.")]
    wait_for(lambda: handled(event_id, FLAKY), message="the retried delivery")
    row = wait_for(
        lambda: (r := poisoned(event_id, FLAKY)) and r.status == PoisonStatus.RESOLVED and r,
        message="the row to be resolved",
    )
    assert row.resolved_at is not None
    assert effects(event_id, "flaky_ping") == 1
    assert PoisonedTask.objects.filter(event_id=event_id).count() == 1


def test_discard_marks_the_row_and_enqueues_nothing(celery_worker: Worker, client: Client) -> None:
    event_id, _ = publish_ping("bug")
    row = wait_for(lambda: poisoned(event_id, FLAKY), message="the poisoned row")
    operator(client, "view_poisonedtask", "change_poisonedtask")
    sent: list[object] = []

    def seen(**kwargs: object) -> None:
        sent.append(kwargs)

    before_task_publish.connect(seen, weak=False)
    try:
        response = act(client, "discard", row)
    finally:
        before_task_publish.disconnect(seen)
    assert "Discarded 1 task(s)." in response.content.decode()
    assert sent == []
    row.refresh_from_db()
    assert row.status == PoisonStatus.DISCARDED
    assert logged(row) == [("op", "Discarded.")]
    # A discarded row is not retried by accident later.
    response = act(client, "retry", row)
    assert f"#{row.pk} is discarded" in response.content.decode()


def test_actions_need_the_change_permission(celery_worker: Worker, client: Client) -> None:
    event_id, _ = publish_ping("bug")
    row = wait_for(lambda: poisoned(event_id, FLAKY), message="the poisoned row")
    operator(client, "view_poisonedtask")  # may look, may not act
    response = client.post(CHANGELIST, {"action": "retry", "_selected_action": [row.pk]})
    assert response.status_code == 200
    assert b'value="retry"' not in response.content
    assert b"Re-enqueued" not in response.content
    row.refresh_from_db()
    assert row.status == PoisonStatus.POISONED
    assert logged(row) == []


def test_no_one_may_delete_a_poisoned_task_not_even_a_superuser(client: Client) -> None:
    """The row is the only record of the failure: Django's bulk delete is gone,
    and a crafted POST of it (or of the delete page) removes nothing."""
    rows = [
        PoisonedTask.objects.create(
            event_id=uuid.uuid4(), handler=FLAKY, exception="ValueError: a bug", payload={}
        )
        for _ in range(2)
    ]
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    listing = client.get(CHANGELIST)
    assert b'value="delete_selected"' not in listing.content
    response = client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [r.pk for r in rows], "post": "yes"},
        follow=True,
    )
    assert "No action selected." in response.content.decode()
    delete = reverse("admin:mediator_poisonedtask_delete", args=[rows[0].pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert PoisonedTask.objects.filter(pk__in=[r.pk for r in rows]).count() == 2
    assert not LogEntry.objects.exists()


def test_the_changelist_loads_no_payload_and_no_traceback(client: Client) -> None:
    PoisonedTask.objects.create(
        event_id=uuid.uuid4(), handler=FLAKY, exception="ValueError: a bug",
        payload={"payload": {"blob": "x" * 60_000}}, traceback="Traceback ... " * 1000,
    )  # fmt: skip
    operator(client, "view_poisonedtask")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    table = connection.ops.quote_name(PoisonedTask._meta.db_table)
    selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and table in q["sql"]]
    assert selects  # the page did read the rows
    for column in ("payload", "traceback", "exception"):
        # Selected as a column (not as a function's argument: the one key the
        # shop's links read is extracted in SQL).
        quoted = re.escape(f"{table}.{connection.ops.quote_name(column)}")
        selected = re.compile(rf"(SELECT |, ){quoted}(,| FROM )")
        assert not [sql for sql in selects if selected.search(sql)], column
    assert "x" * 100 not in response.content.decode()


def test_poisoned_task_detail_shows_traceback_and_payload(
    celery_worker: Worker, client: Client
) -> None:
    event_id, key = publish_ping("bug")
    row = wait_for(lambda: poisoned(event_id, FLAKY), message="the poisoned row")
    operator(client, "view_poisonedtask")
    page = client.get(reverse("admin:mediator_poisonedtask_change", args=[row.pk])).content.decode()
    assert "ValueError: a bug: retrying will not help" in page
    assert "Traceback (most recent call last)" in page
    assert key in page
    listing = client.get(CHANGELIST, {"q": str(event_id)}).content.decode()
    assert FLAKY in listing


def test_anonymous_users_cannot_see_poisoned_tasks(client: Client) -> None:
    response = client.get(CHANGELIST)
    assert response.status_code == 302
