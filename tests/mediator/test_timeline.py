"""What the order page and the dashboard say about each delivery."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from mediator.delivery import progress
from mediator.models import (
    DeliveryProgress,
    InboxRecord,
    OutboxMessage,
    OutboxStatus,
    PoisonedTask,
    PoisonStatus,
    ProgressState,
)
from mediator.observability.timeline import events_about, timeline
from tests.mediator.helpers import FLAKY, RECORD, new_key, publish_ping, store
from tests.support import Worker, wait_for

HANDLERS = [
    "h.done",
    "h.poisoned",
    "h.discarded",
    "h.retrying",
    "h.running",
    "h.queued",
    "h.retried",
]


def dispatched_row() -> OutboxMessage:
    now = timezone.now()
    return OutboxMessage.objects.create(
        event_id=uuid.uuid4(), event_type="testapp.Pinged", payload={"key": "k", "mode": "ok"},
        occurred_at=now, status=OutboxStatus.DISPATCHED, dispatched_at=now, handlers=HANDLERS,
    )  # fmt: skip


@pytest.mark.django_db
def test_each_delivery_state_is_read_from_the_record_that_decides_it() -> None:
    row = dispatched_row()
    eid = row.event_id
    InboxRecord.objects.create(event_id=eid, handler="h.done")
    PoisonedTask.objects.create(event_id=eid, handler="h.poisoned", exception="E: x", attempts=3)
    PoisonedTask.objects.create(
        event_id=eid, handler="h.discarded", exception="E", status=PoisonStatus.DISCARDED
    )
    progress.record_retrying(eid, "h.retrying", 2, 30.0, ConnectionError("refused"))
    progress.record_running(eid, "h.running", 1)
    # Poisoned, then re-enqueued from the admin: its old progress is stale.
    progress.record_retrying(eid, "h.retried", 3, 1.0, ConnectionError("old"))
    PoisonedTask.objects.create(
        event_id=eid, handler="h.retried", exception="E", status=PoisonStatus.RETRIED,
        last_failed_at=timezone.now() + timedelta(seconds=1),
    )  # fmt: skip

    [event] = timeline([row])
    states = {h.handler: h for h in event.handlers}
    assert {name: h.state for name, h in states.items()} == {
        "h.done": "done",
        "h.poisoned": "poisoned",
        "h.discarded": "discarded",
        "h.retrying": "retrying",
        "h.running": "running",
        "h.queued": "queued",
        "h.retried": "queued",
    }
    assert states["h.poisoned"].attempt == 3
    assert states["h.poisoned"].error == "E: x"
    retrying = states["h.retrying"]
    assert retrying.attempt == 2
    assert retrying.error == "ConnectionError: refused"
    assert retrying.next_try_at is not None
    assert retrying.next_try_at > timezone.now()
    assert not event.settled


@pytest.mark.django_db
def test_a_pending_event_lists_the_handlers_subscribed_now_as_waiting() -> None:
    row = OutboxMessage.objects.create(
        event_id=uuid.uuid4(), event_type="testapp.Pinged", payload={"key": "k", "mode": "ok"},
        occurred_at=timezone.now(),
    )  # fmt: skip
    [event] = timeline([row])
    assert {h.handler: h.state for h in event.handlers} == {RECORD: "waiting", FLAKY: "waiting"}


@pytest.mark.django_db
def test_progress_can_be_switched_off(settings) -> None:
    settings.MEDIATOR = {**settings.MEDIATOR, "TRACK_PROGRESS": False}
    progress.record_running(uuid.uuid4(), "h", 1)
    assert not DeliveryProgress.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_running_handler_shows_running_then_done(celery_worker: Worker) -> None:
    key = new_key()
    publish_ping("block", key)
    r = store()

    def flaky_state() -> str:
        [event] = events_about("key", key)
        return {h.handler: h.state for h in event.handlers}[FLAKY]

    wait_for(lambda: r.llen(f"started:{key}") > 0, message="the handler to start")
    # Recorded once it has run for MEDIATOR["RECORD_RUNNING_AFTER"] (0.5 s).
    wait_for(lambda: flaky_state() == "running", timeout=10, message="the run to show running")
    r.rpush(f"release:{key}", 1)
    wait_for(lambda: flaky_state() == "done", message="the handler to finish")
    wait_for(lambda: events_about("key", key)[0].settled, message="every handler done")


@pytest.mark.django_db(transaction=True)
def test_retries_are_recorded_and_poison_has_the_last_word(celery_worker: Worker) -> None:
    event_id, key = publish_ping("always-fail")

    def state() -> str:
        return {h.handler: h.state for h in events_about("key", key)[0].handlers}[FLAKY]

    wait_for(lambda: state() == "poisoned", message="the delivery to be poisoned")
    last = DeliveryProgress.objects.get(event_id=event_id, handler=FLAKY)
    # Attempts 1 and 2 were retried; the 3rd ran and was poisoned, which wins.
    assert (last.state, last.attempt) == (ProgressState.RUNNING, 3)
    [flaky] = [h for h in events_about("key", key)[0].handlers if h.handler == FLAKY]
    assert flaky.attempt == 3
    assert flaky.error == "ConnectionError: downstream unavailable (attempt 3)"


@pytest.mark.django_db(transaction=True)
def test_a_deferred_delivery_runs_later_without_spending_its_retries(
    celery_worker: Worker,
) -> None:
    event_id, key = publish_ping("defer-4-times")  # flaky_ping has max_retries=2
    wait_for(
        lambda: InboxRecord.objects.filter(event_id=event_id, handler=FLAKY).exists(),
        message="the deferred delivery to be done",
    )
    assert store().get(f"attempts:{key}") == b"5"
    assert not PoisonedTask.objects.filter(event_id=event_id).exists()
