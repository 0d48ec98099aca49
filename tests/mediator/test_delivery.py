"""Delivery through a real Redis and real `celery worker` processes."""

from __future__ import annotations

import itertools
import os
import signal
from typing import Any

import pytest
from celery import current_app
from celery.signals import before_task_publish
from django.db import transaction

from mediator import DomainEvent, publish
from mediator.messages.envelope import Envelope
from mediator.models import OutboxMessage, OutboxStatus, PoisonedTask, PoisonStatus
from tests.mediator.helpers import (
    FLAKY,
    RECORD,
    assert_poisoned_by_deaths,
    effects,
    handled,
    new_key,
    poisoned,
    publish_ping,
    store,
)
from tests.support import Worker, wait_for
from tests.testapp.events import Parked, Pinged

pytestmark = pytest.mark.django_db(transaction=True)


class Published:
    """Counts task messages this process hands to the broker."""

    def __init__(self) -> None:
        self.task_ids: list[str] = []

    def __enter__(self) -> Published:
        before_task_publish.connect(self._seen, weak=False)
        return self

    def __exit__(self, *exc: object) -> None:
        before_task_publish.disconnect(self._seen)

    def _seen(self, headers: dict | None = None, **_: object) -> None:
        self.task_ids.append((headers or {}).get("id", ""))


def test_rollback_publishes_nothing_and_commit_reaches_every_handler_once(
    celery_worker: Worker,
) -> None:
    key = new_key()
    with Published() as sent:
        try:
            with transaction.atomic():
                publish(Pinged(key=key))
                raise RuntimeError("changed my mind")
        except RuntimeError:
            pass
    assert sent.task_ids == []
    assert not OutboxMessage.objects.exists()

    event_id, _ = publish_ping()
    wait_for(
        lambda: handled(event_id, RECORD) and handled(event_id, FLAKY), message="both handlers"
    )
    assert effects(event_id, "record_ping") == 1
    assert effects(event_id, "flaky_ping") == 1
    row = OutboxMessage.objects.get(event_id=event_id)
    assert row.status == OutboxStatus.DISPATCHED
    assert sorted(row.handlers) == sorted([RECORD, FLAKY])


def test_events_of_one_transaction_are_dispatched_in_order(celery_worker: Worker) -> None:
    with Published() as sent, transaction.atomic():
        first = publish(Pinged(key=new_key()))
        second = publish(Pinged(key=new_key()))
    from mediator.delivery.dispatch import delivery_task_id

    expected = [delivery_task_id(e, h) for e in (first, second) for h in (RECORD, FLAKY)]
    assert [t for t in sent.task_ids if t in expected] == expected


def test_event_without_handlers_here_waits_for_a_process_that_has_one(
    isolated_registry: None,
) -> None:
    """Not marked no_handlers at once: a newer process may have the handler
    (tests/mediator/test_relay.py follows the row to the end)."""

    class Unheard(DomainEvent):
        event_type = "testapp.Unheard"

    with transaction.atomic():
        event_id = publish(Unheard())
    row = OutboxMessage.objects.get(event_id=event_id)
    assert row.status == OutboxStatus.PENDING
    assert row.dispatched_at is None
    assert row.created_at > row.occurred_at  # the relay's next look, a little later
    assert row.last_error.startswith("no handler is registered in the process that looked last")


def test_one_failing_handler_does_not_stop_the_other_and_is_poisoned_after_backoff(
    celery_worker: Worker,
) -> None:
    event_id, key = publish_ping("always-fail")
    row = wait_for(lambda: poisoned(event_id, FLAKY), message="the poisoned row")
    assert handled(event_id, RECORD) is not None
    assert effects(event_id, "record_ping") == 1
    assert effects(event_id, "flaky_ping") == 0  # each attempt rolled back
    assert handled(event_id, FLAKY) is None
    assert row.attempts == 3  # the first try and max_retries=2
    assert row.status == PoisonStatus.POISONED
    assert row.exception == "ConnectionError: downstream unavailable (attempt 3)"
    assert "Traceback" in row.traceback
    assert "flaky_ping" in row.traceback
    assert (row.payload or {})["payload"] == {"key": key, "mode": "always-fail"}
    times = [float(t) for t in store().lrange(f"attempt-times:{key}", 0, -1)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 3
    # backoff 0.2 s then 0.4 s, each with equal jitter: at least half of it.
    assert gaps[0] >= 0.1, gaps
    assert gaps[1] >= 0.2, gaps


def test_a_bug_is_poisoned_at_once_not_retried(celery_worker: Worker) -> None:
    event_id, key = publish_ping("bug")
    row = wait_for(lambda: poisoned(event_id, FLAKY), message="the poisoned row")
    assert row.attempts == 1
    assert row.exception == "ValueError: a bug: retrying will not help"
    assert int(store().get(f"attempts:{key}") or 0) == 1


def test_handler_failing_twice_then_succeeding_applies_its_effect_once(
    celery_worker: Worker,
) -> None:
    event_id, key = publish_ping("fail-twice")
    wait_for(lambda: handled(event_id, FLAKY), message="the third attempt to succeed")
    assert int(store().get(f"attempts:{key}") or 0) == 3
    assert effects(event_id, "flaky_ping") == 1
    assert poisoned(event_id, FLAKY) is None


def test_pool_process_killed_mid_handler_is_redelivered_and_applies_once(
    celery_worker: Worker,
) -> None:
    event_id, key = publish_ping("block")
    r = store()
    started: Any = wait_for(lambda: r.lindex(f"started:{key}", 0), message="the handler to start")
    pid = int(started)
    assert pid in celery_worker.pool_pids()
    os.kill(pid, signal.SIGKILL)
    r.rpush(f"release:{key}", 1)
    wait_for(lambda: handled(event_id, FLAKY), message="the redelivered task to finish")
    assert r.llen(f"started:{key}") == 2
    assert effects(event_id, "flaky_ping") == 1


def test_process_killed_after_commit_before_ack_is_skipped_by_the_inbox(
    celery_worker: Worker,
) -> None:
    event_id, key = publish_ping("die-after-commit")
    record = wait_for(
        lambda: (rec := handled(event_id, FLAKY)) and rec.duplicates == 1 and rec,
        message="the redelivery to be skipped",
    )
    assert record.duplicates == 1
    assert store().get(f"died:{key}") == b"1"
    assert int(store().get(f"attempts:{key}") or 0) == 1  # the handler ran once
    assert effects(event_id, "flaky_ping") == 1


def test_same_task_delivered_twice_is_skipped_the_second_time(celery_worker: Worker) -> None:
    message = Envelope.wrap(Pinged(key=new_key()), correlation_id=None, causation_id=None)
    task = current_app.tasks[RECORD]
    task.apply_async(args=(message.to_message(),))
    task.apply_async(args=(message.to_message(),))
    record = wait_for(
        lambda: (rec := handled(message.event_id, RECORD)) and rec.duplicates == 1 and rec,
        message="both deliveries",
    )
    assert record.duplicates == 1
    assert effects(message.event_id, "record_ping") == 1


def test_the_inbox_transaction_holds_without_any_behaviour(settings: Any) -> None:
    """The inbox is part of delivery, not a behaviour settings can remove: with
    an empty chain a second delivery is still skipped, the effect applied once.
    (In-process `apply()`: this is about the inbox, not about the broker.)"""
    settings.MEDIATOR = {**settings.MEDIATOR, "BEHAVIOURS": []}
    envelope = Envelope.wrap(Pinged(key=new_key()), correlation_id=None, causation_id=None)
    task = current_app.tasks[RECORD]
    assert task.apply(args=(envelope.to_message(),)).get() == "done"
    assert task.apply(args=(envelope.to_message(),)).get() == "duplicate"
    assert effects(envelope.event_id, "record_ping") == 1
    record = handled(envelope.event_id, RECORD)
    assert record is not None
    assert record.duplicates == 1


@pytest.mark.parametrize(
    ("task_name", "args", "error"),
    [
        (RECORD, ["not an envelope"], "MalformedMessage: Expected an event envelope"),
        (RECORD, [], "UnknownHandler: tests.testapp.handlers.record_ping takes one event envelope"),
        (RECORD, "unknown-type", "UnknownEventType: Unknown event type 'testapp.Gone'"),
        (RECORD, "bad-payload", "InvalidPayload: testapp.Pinged payload is invalid"),
        (
            RECORD,
            "wrong-event",
            "UnknownHandler: tests.testapp.handlers.record_ping does not handle",
        ),
        ("tests.testapp.handlers.removed", "valid", "UnknownHandler: No handler task named"),
    ],
)
def test_messages_no_retry_can_fix_are_poisoned_at_once(
    celery_worker: Worker, task_name: str, args: Any, error: str
) -> None:
    envelope = Envelope.wrap(Pinged(key=new_key()), correlation_id=None, causation_id=None)
    message = envelope.to_message()
    if args == "unknown-type":
        args = [{**message, "event_type": "testapp.Gone"}]
    elif args == "bad-payload":
        args = [{**message, "payload": {"key": 1, "extra": True}}]
    elif args == "wrong-event":
        args = [Envelope.wrap(Parked(n=1), correlation_id=None, causation_id=None).to_message()]
    elif args == "valid":
        args = [message]
    result = current_app.send_task(task_name, args=args)
    row = wait_for(
        lambda: PoisonedTask.objects.filter(task_id=result.id).first(), message="the poisoned row"
    )
    assert row.exception.startswith(error), row.exception
    assert row.attempts == 1
    assert row.handler == task_name


def test_worker_killed_on_every_delivery_is_poisoned_and_others_keep_flowing(
    celery_worker: Worker,
) -> None:
    event_id, key = publish_ping("always-die")
    healthy_id, _ = publish_ping("ok")
    assert_poisoned_by_deaths(event_id, key, healthy_id)
