"""Writing the poisoned record: on a thread while the worker's pool forks, and
whatever the message holds (the database must take the row)."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from mediator.delivery import storable
from mediator.delivery.poison import ForkGuard, record, record_in_background
from mediator.models import PoisonedTask
from mediator.signals import delivery_poisoned
from tests.mediator.helpers import FLAKY
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_fork_waits_for_the_poison_record_in_flight() -> None:
    """A child forked mid-record would inherit the thread's half-taken locks
    and hang on its first query, holding SQLite's write lock for good."""
    event_id = uuid.uuid4()
    thread = record_in_background(
        handler="tests.testapp.handlers.flaky_ping",
        message={"event_id": str(event_id), "event_type": "testapp.Pinged", "payload": {}},
        exception=RuntimeError("lost"),
        traceback_text="",
        attempts=3,
        task_id="t",
    )
    # Fork only once the thread is recording (or, on a fast machine, done).
    wait_for(lambda: ForkGuard.lock.locked() or not thread.is_alive(), message="the record")
    pid = os.fork()
    if pid == 0:  # the child: only prove it was forked
        os._exit(0)
    recorded_before_fork_returned = PoisonedTask.objects.filter(event_id=event_id).exists()
    _, status = os.waitpid(pid, 0)
    thread.join(timeout=10)
    assert os.waitstatus_to_exitcode(status) == 0
    assert recorded_before_fork_returned
    assert not thread.is_alive()


def poison_now(message: object, *, exception: BaseException | None = None) -> PoisonedTask:
    return record(
        handler=FLAKY,
        message=message,
        exception=exception or ValueError("a bug"),
        traceback_text="Traceback (most recent call last):\n  ...\nValueError: a bug\x00",
        attempts=1,
        task_id="t-1",
    )


def test_text_the_database_refuses_is_escaped_in_every_field() -> None:
    """NUL and lone surrogates: PostgreSQL refuses both in text and jsonb."""
    event_id = uuid.uuid4()
    message = {
        "event_id": str(event_id), "event_type": "testapp.Pinged\x00",
        "payload": {"key": "lone \ud800 surrogate"},
    }  # fmt: skip
    row = poison_now(message, exception=ValueError("bad \x00 byte \udc80"))
    row.refresh_from_db()
    assert row.event_type == "testapp.Pinged\\x00"
    assert row.exception == "ValueError: bad \\x00 byte \\udc80"
    assert row.traceback.endswith("ValueError: a bug\\x00")
    assert row.payload is not None
    assert row.payload["stored_as"] == "json_text"
    assert json.loads(row.payload["json"]) == message


def test_a_record_the_database_still_refuses_leaves_a_minimal_row() -> None:
    """A delivery_poisoned receiver that fails (here: a real unique violation)
    rolls the record back; the failure is kept with what can be stored."""
    event_id = uuid.uuid4()

    def duplicate(*, row: PoisonedTask, **_: object) -> None:
        PoisonedTask.objects.create(event_id=row.event_id, handler=row.handler, exception="copy")

    delivery_poisoned.connect(duplicate, weak=False)
    try:
        poison_now({"event_id": str(event_id), "event_type": "testapp.Pinged", "payload": {}})
    finally:
        delivery_poisoned.disconnect(duplicate)
    row = PoisonedTask.objects.get(event_id=event_id)
    assert (row.handler, row.task_id, row.payload, row.traceback) == (FLAKY, "t-1", None, "")
    assert row.exception.startswith("ValueError: a bug\n[payload and traceback not stored: ")
    assert "IntegrityError" in row.exception


def test_over_long_fields_are_cut_to_their_columns() -> None:
    row = record(
        handler="h" * 300, message={"event_id": str(uuid.uuid4()), "event_type": "e" * 300},
        exception=RuntimeError("x" * 50_000), traceback_text="frame\n" * 10_000 + "the end",
        attempts=1, task_id="t" * 300,
    )  # fmt: skip
    row.refresh_from_db()
    assert (len(row.handler), len(row.event_type), len(row.task_id)) == (200, 200, 255)
    assert len(row.exception) == storable.TEXT_LIMIT
    assert len(row.traceback) == storable.TEXT_LIMIT
    assert row.traceback.startswith("[")
    assert row.traceback.endswith("the end")  # a traceback keeps its end
