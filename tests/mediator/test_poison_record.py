"""The worker's main process records poison on a thread while its pool forks."""

from __future__ import annotations

import os
import uuid

import pytest

from mediator.delivery.poison import ForkGuard, record_in_background
from mediator.models import PoisonedTask
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
