"""Bad input ends poisoned with a clear error, or recovered; the worker keeps
running and other deliveries keep flowing."""

from __future__ import annotations

import uuid

import pytest
from celery import current_app
from django.db import transaction
from kombu import Producer

from mediator import publish
from mediator.exceptions import ImproperEvent
from mediator.messages.envelope import Envelope
from mediator.models import PoisonedTask
from tests.mediator.helpers import FLAKY, RECORD, effects, handled, new_key, poisoned, publish_ping
from tests.support import Worker, wait_for
from tests.testapp.events import Pinged, Stalled

STALL = "tests.testapp.handlers.stall"

pytestmark = pytest.mark.django_db(transaction=True)


def keeps_flowing() -> None:
    event_id, _ = publish_ping("ok")
    wait_for(
        lambda: handled(event_id, FLAKY) and handled(event_id, RECORD), message="a healthy event"
    )


def test_malformed_json_on_the_queue_is_kept_as_poisoned(celery_worker: Worker) -> None:
    task_id = str(uuid.uuid4())
    with current_app.connection_for_write() as conn:
        Producer(conn).publish(
            b'{"this is": not json',
            routing_key="celery",
            content_type="application/json",
            content_encoding="utf-8",
            headers={"task": RECORD, "id": task_id, "lang": "py", "argsrepr": "", "kwargsrepr": ""},
        )
    row = wait_for(lambda: PoisonedTask.objects.filter(task_id=task_id).first(), message="poison")
    assert row.exception.startswith("MalformedMessage: cannot decode the message body")
    assert row.handler == RECORD
    assert row.payload is not None
    assert row.payload["raw_body"] == '{"this is": not json'
    keeps_flowing()


def test_payload_of_an_unknown_version_is_poisoned(celery_worker: Worker) -> None:
    message = Envelope.wrap(Pinged(key=new_key()), correlation_id=None, causation_id=None)
    result = current_app.send_task(RECORD, args=({**message.to_message(), "version": 9},))
    row = wait_for(lambda: PoisonedTask.objects.filter(task_id=result.id).first(), message="poison")
    assert row.exception == (
        "InvalidPayload: testapp.Pinged version 9 cannot be read: this code knows version 1."
    )
    keeps_flowing()


def test_oversized_payload_is_refused_at_publish_and_poisoned_on_arrival(
    celery_worker: Worker,
) -> None:
    huge = "x" * 70_000
    with pytest.raises(ImproperEvent, match="over the 65536-byte limit"):
        Envelope.wrap(Pinged(key=huge), correlation_id=None, causation_id=None)
    message = Envelope.wrap(Pinged(key="k"), correlation_id=None, causation_id=None).to_message()
    result = current_app.send_task(RECORD, args=({**message, "payload": {"key": huge}},))
    row = wait_for(lambda: PoisonedTask.objects.filter(task_id=result.id).first(), message="poison")
    assert "payload is 70011 bytes, over the 65536-byte limit" in row.exception
    keeps_flowing()


def test_handler_that_never_returns_is_stopped_by_the_hard_limit_and_poisoned(
    celery_worker: Worker,
) -> None:
    with transaction.atomic():
        event_id = publish(Stalled(key=new_key()))
    row = wait_for(lambda: poisoned(event_id, STALL), timeout=60, message="the hard time limit")
    assert row.exception == "TimeLimitExceeded: TimeLimitExceeded(4,)"
    assert row.attempts == 1
    keeps_flowing()


def test_handler_leaking_a_database_connection_error_recovers(celery_worker: Worker) -> None:
    event_id, _ = publish_ping("db-error-once")
    wait_for(lambda: handled(event_id, FLAKY), message="the retry on a fresh connection")
    assert effects(event_id, "flaky_ping") == 1
    assert poisoned(event_id, FLAKY) is None
    keeps_flowing()
