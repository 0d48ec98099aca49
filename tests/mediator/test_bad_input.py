"""Bad input ends poisoned with a clear error, or recovered; the worker keeps
running and other deliveries keep flowing."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
from celery import current_app
from django.db import transaction
from kombu import Producer

from mediator import publish
from mediator.delivery import poison
from mediator.exceptions import ImproperEvent, MalformedMessage
from mediator.messages.envelope import Envelope
from mediator.models import PoisonedTask
from tests.mediator.helpers import (
    FLAKY,
    RECORD,
    effects,
    handled,
    new_key,
    poisoned,
    publish_ping,
    store,
)
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
    # Stored bounded: its start, its size and its digest, marked as truncated.
    sent = json.dumps({**message, "payload": {"key": huge}})
    assert row.payload is not None
    assert row.payload["stored_as"] == "truncated"
    assert row.payload["bytes"] == len(sent)
    assert row.payload["sha256"] == hashlib.sha256(sent.encode()).hexdigest()
    assert sent.startswith(row.payload["prefix"])
    assert len(json.dumps(row.payload)) < 5000
    with pytest.raises(MalformedMessage, match="cannot be retried"):
        poison.retry(row)
    keeps_flowing()


def send_ping(payload: dict[str, str], **options: Any) -> tuple[dict[str, Any], str]:
    """A Pinged envelope as a foreign or older publisher might send it."""
    message = Envelope.wrap(Pinged(key=new_key()), correlation_id=None, causation_id=None)
    sent = {**message.to_message(), "payload": payload}
    return sent, current_app.send_task(FLAKY, args=(sent,), **options).id


def test_a_nul_in_the_payload_reaches_the_admin_in_a_form_postgresql_takes(
    celery_worker: Worker,
) -> None:
    """jsonb refuses NUL: the record used to fail, and the handler path retried
    it every backoff_max for ever; nothing reached the admin."""
    sent, _ = send_ping({"key": f"nul\x00{new_key()}", "mode": "bug"})
    row = wait_for(lambda: poisoned(sent["event_id"], FLAKY), message="the poisoned row")
    assert row.exception == "ValueError: a bug: retrying will not help"
    assert row.attempts == 1
    assert row.payload is not None
    assert row.payload["stored_as"] == "json_text"
    assert json.loads(row.payload["json"]) == sent  # exactly what arrived
    keeps_flowing()


def test_over_long_task_id_and_handler_name_are_cut_to_their_columns(
    celery_worker: Worker,
) -> None:
    """Each used to fail the record on PostgreSQL (value too long): one looped
    in the handler path, the other was logged and dropped by the recorder."""
    long_id = "t" * 300
    sent, _ = send_ping({"key": new_key(), "mode": "bug"}, task_id=long_id)
    row = wait_for(lambda: poisoned(sent["event_id"], FLAKY), message="the poisoned row")
    assert row.task_id == long_id[:255]

    renamed = "tests.testapp.handlers." + "renamed_" * 40  # 343 characters, no such task
    envelope = Envelope.wrap(Pinged(key=new_key()), correlation_id=None, causation_id=None)
    current_app.send_task(renamed, args=(envelope.to_message(),), task_id="unknown-" + new_key())
    row = wait_for(
        lambda: PoisonedTask.objects.filter(event_id=envelope.event_id).first(),
        message="the unknown task's poisoned row (recorded in the background)",
    )
    assert row.handler == renamed[:200]
    assert row.exception.startswith(f"UnknownHandler: No handler task named {renamed!r}")
    keeps_flowing()


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("data-error", "DataError: value too long for type character varying(100)"),
        ("integrity-error", "IntegrityError: "),
    ],
)
def test_a_data_or_integrity_error_from_a_handler_is_poisoned_at_once(
    celery_worker: Worker, mode: str, error: str
) -> None:
    """The same input fails the same way: retrying only delays the admin."""
    event_id, key = publish_ping(mode)
    row = wait_for(lambda: poisoned(event_id, FLAKY), message="the poisoned row")
    assert row.exception.startswith(error)
    assert row.attempts == 1
    assert store().get(f"attempts:{key}") == b"1"
    assert effects(event_id, "flaky_ping") == 0  # rolled back with the inbox record
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
