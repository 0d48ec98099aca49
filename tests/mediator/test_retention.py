"""Retention: what `mediator.prune` deletes, what it never deletes, and that
the tables stay bounded while redelivered messages are still skipped."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from celery import current_app
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from mediator import publish
from mediator.delivery.mapping import wire_message
from mediator.handlers.registry import handler_registry
from mediator.models import (
    DeliveryProgress,
    InboxRecord,
    OutboxMessage,
    OutboxStatus,
    PoisonedTask,
    PoisonStatus,
    SagaRun,
)
from mediator.ops.checks import check_wiring
from mediator.recovery.reconcile import reconcile_pass
from mediator.retention.policy import RetentionPolicy, redelivery_window
from mediator.retention.prune import prune
from mediator.sagas.models import RunState, SagaStep
from notifications.models import SentEmail
from tests.mediator.helpers import RECORD, effects, handled, new_key
from tests.support import Worker, wait_for
from tests.testapp.events import Pinged

DAY = timedelta(days=1)


def policy(**overrides: Any) -> RetentionPolicy:
    ages: dict[str, Any] = {
        "outbox": DAY, "inbox": DAY, "progress": DAY, "sagas": DAY, "poisoned": DAY,
        "models": {"notifications.SentEmail": ("sent_at", DAY)}, "batch_size": 2,
    }  # fmt: skip
    return RetentionPolicy(**{**ages, **overrides})


def outbox_row(status: str, *, age: timedelta, settled: bool = True) -> OutboxMessage:
    at = timezone.now() - age
    return OutboxMessage.objects.create(
        event_id=uuid.uuid4(), event_type="testapp.Pinged", payload={}, occurred_at=at,
        created_at=at, status=status, dispatched_at=at, settled_at=at if settled else None,
    )  # fmt: skip


@pytest.mark.django_db
def test_old_finished_rows_go_and_everything_still_needed_stays() -> None:
    old, new = 2 * DAY, timedelta(hours=1)
    gone = [
        outbox_row(OutboxStatus.DISPATCHED, age=old),
        outbox_row(OutboxStatus.NO_HANDLERS, age=old, settled=False),
    ]
    kept = [
        outbox_row(OutboxStatus.DISPATCHED, age=new),
        outbox_row(OutboxStatus.PENDING, age=old, settled=False),  # never handed to the broker
        outbox_row(OutboxStatus.DISPATCHED, age=old, settled=False),  # may still be re-sent
    ]
    then = timezone.now() - old
    settled_event, unsettled_event = gone[0].event_id, kept[2].event_id
    InboxRecord.objects.create(event_id=settled_event, handler="h", handled_at=then)
    InboxRecord.objects.create(event_id=uuid.uuid4(), handler="h", handled_at=then)  # row pruned
    InboxRecord.objects.create(event_id=unsettled_event, handler="h", handled_at=then)
    InboxRecord.objects.create(event_id=uuid.uuid4(), handler="h")
    DeliveryProgress.objects.create(event_id=uuid.uuid4(), handler="h", state="retrying",
                                    updated_at=then)  # fmt: skip
    for status in PoisonStatus.values:
        PoisonedTask.objects.create(
            event_id=uuid.uuid4(), handler=status, exception="x", status=status,
            last_failed_at=then, resolved_at=then,
        )  # fmt: skip
    for state in RunState.values:
        run = SagaRun.objects.create(id=uuid.uuid4(), saga="s", state=state, data={},
                                     finished_at=then)  # fmt: skip
        run.steps.create(index=0, name="step", action="a")
    SentEmail.objects.create(event_id=uuid.uuid4(), kind="a", recipient="a@example.com",
                             subject="s", sent_at=then)  # fmt: skip
    SentEmail.objects.create(event_id=uuid.uuid4(), kind="b", recipient="b@example.com",
                             subject="not yet sent", created_at=then)  # fmt: skip

    result = prune(policy())

    assert result.deleted == {
        "mediator.OutboxMessage": 2,
        "mediator.InboxRecord": 2,
        "mediator.DeliveryProgress": 1,
        "mediator.PoisonedTask": 2,
        "mediator.SagaRun": 2,
        "notifications.SentEmail": 1,
    }
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {row.pk for row in kept}
    assert InboxRecord.objects.filter(event_id=unsettled_event).exists()
    assert InboxRecord.objects.count() == 2
    assert set(PoisonedTask.objects.values_list("status", flat=True)) == {"poisoned", "retried"}
    assert set(SagaRun.objects.values_list("state", flat=True)) == {
        "running", "compensating", "stuck",
    }  # fmt: skip
    assert SagaStep.objects.count() == 3  # a run's steps go with it
    assert SentEmail.objects.get().subject == "not yet sent"
    assert prune(policy()).total == 0


@pytest.mark.django_db
def test_an_age_of_none_keeps_that_table() -> None:
    outbox_row(OutboxStatus.DISPATCHED, age=2 * DAY)
    assert "mediator.OutboxMessage" not in prune(policy(outbox=None)).deleted
    assert OutboxMessage.objects.count() == 1


@pytest.mark.django_db
def test_the_command_reports_and_can_only_count() -> None:
    outbox_row(OutboxStatus.DISPATCHED, age=30 * DAY)
    out = StringIO()
    call_command("prune_mediator", "--dry-run", stdout=out)
    assert "mediator.OutboxMessage: 1 to delete" in out.getvalue()
    assert OutboxMessage.objects.count() == 1
    call_command("prune_mediator", stdout=out)
    assert "mediator.OutboxMessage: 1 deleted" in out.getvalue()
    assert not OutboxMessage.objects.exists()


def test_beat_runs_the_pruning() -> None:
    entry = current_app.conf.beat_schedule["mediator-prune"]
    assert entry["task"] == "mediator.prune"
    assert "mediator.prune" in current_app.tasks


def test_an_inbox_kept_shorter_than_a_redelivery_can_arrive_is_refused(settings: Any) -> None:
    window = redelivery_window()
    # visibility timeout (1 h here) + the reconciler's bound + the longest retry schedule
    assert window >= timedelta(seconds=3600 + settings.MEDIATOR["REDELIVER_AFTER_SECONDS"])
    short = (window - timedelta(minutes=1)).total_seconds() / 86400
    settings.MEDIATOR = {**settings.MEDIATOR, "RETENTION": {"INBOX_DAYS": short}}
    [error] = [m for m in check_wiring() if m.id == "mediator.E009"]
    assert "that copy would apply its effect a second time" in error.msg
    settings.MEDIATOR = {**settings.MEDIATOR, "RETENTION": {"INBOX_DAYS": short + 2 / 1440}}
    assert not [m for m in check_wiring() if m.id == "mediator.E009"]


@pytest.mark.parametrize(
    ("retention", "says"),
    [
        ({"INBOX_DAY": 3}, "Unknown MEDIATOR['RETENTION'] key(s) ['INBOX_DAY']"),
        ({"MODELS": {"notifications.SentEmail": "sent_at"}}, 'must be ["datetime_field", days]'),
        ({"MODELS": {"nowhere.Thing": ["at", 3]}}, "names nowhere.Thing.at"),
        ({"MODELS": {"notifications.SentEmail": ["sent", 3]}}, "has no field named 'sent'"),
    ],
)
def test_a_wrong_retention_setting_is_a_clear_error(
    settings: Any, retention: dict[str, Any], says: str
) -> None:
    settings.MEDIATOR = {**settings.MEDIATOR, "RETENTION": retention}
    [error] = [m for m in check_wiring() if m.id == "mediator.E010"]
    assert says in error.msg


@pytest.mark.django_db(transaction=True)
def test_tables_stay_bounded_while_redeliveries_are_still_skipped(celery_worker: Worker) -> None:
    """Rounds of events, each fully handled and settled, then pruned as if a
    day had passed since the round began: only the last round's rows remain,
    and a copy of one of its messages is still recognised and skipped."""
    handlers = handler_registry.for_type(Pinged.event_type)
    sizes: list[tuple[int, int]] = []
    for _ in range(3):
        began = timezone.now()
        keys = [new_key() for _ in range(10)]
        with transaction.atomic():
            ids = [publish(Pinged(key=key)) for key in keys]
        inbox = InboxRecord.objects.filter(event_id__in=ids)
        wait_for(lambda: inbox.count() == 10 * len(handlers), message="the round's deliveries")  # noqa: B023
        assert reconcile_pass(redeliver_after=0).settled == 10
        prune(policy(), now=began + DAY)
        sizes.append((OutboxMessage.objects.count(), InboxRecord.objects.count()))
    assert sizes[0] == sizes[1] == sizes[2]
    assert sizes[0] == (10, 10 * len(handlers))

    row = OutboxMessage.objects.get(event_id=ids[0])
    current_app.tasks[RECORD].apply_async(args=(wire_message(row),))
    record = wait_for(
        lambda: (rec := handled(ids[0], RECORD)) and rec.duplicates == 1 and rec,
        message="the copy to be skipped",
    )
    assert record.duplicates == 1
    assert effects(ids[0], "record_ping") == 1
