"""The "running" state on the timeline, without a write on the hot path.

A delivery that finishes within MEDIATOR["RECORD_RUNNING_AFTER"] seconds
goes from "queued" to "done" and never writes a progress row: at hundreds of
runs a second that write was a third of the mediator's own database round
trips. One that is still running after that is recorded as "running" by a
watcher thread in the worker process, so the order page can tell a slow
handler from one that has not started. A redelivery or a retry (attempt > 1)
is recorded at once: that is when an operator looks.

On SQLite every run is recorded at once, before its transaction: SQLite has
one writer at a time, so the watcher could not write while the handler's
transaction holds the lock.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from mediator.conf import mediator_settings
from mediator.delivery import progress

Run = tuple[float, uuid.UUID, str, int]  # due (monotonic), event id, handler, attempt


class SlowRuns:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runs: dict[object, Run] = {}
        self._pid: int | None = None  # the watcher thread's process (none survive fork)

    @contextmanager
    def watching(self, event_id: uuid.UUID, handler: str, attempt: int) -> Iterator[None]:
        conf = mediator_settings()
        if not conf["TRACK_PROGRESS"]:
            yield
            return
        after = float(conf["RECORD_RUNNING_AFTER"])
        if attempt > 1 or after <= 0 or connection.vendor == "sqlite":
            progress.record_running(event_id, handler, attempt)
            yield
            return
        key = object()
        with self._cond:
            self._start_watcher()
            self._runs[key] = (time.monotonic() + after, event_id, handler, attempt)
            self._cond.notify()
        try:
            yield
        finally:
            # Waits for a "running" write in flight, so a "retrying" written
            # next is never overwritten by it.
            with self._cond:
                self._runs.pop(key, None)

    def _start_watcher(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            threading.Thread(target=self._watch, name="mediator-slow-runs", daemon=True).start()

    def _watch(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = {key: run for key, run in self._runs.items() if run[0] <= now}
                for key, (_, event_id, handler, attempt) in due.items():
                    progress.record_running(event_id, handler, attempt)
                    del self._runs[key]
                if due:
                    connection.close()  # this thread's own; slow runs are rare
                next_due = min((run[0] for run in self._runs.values()), default=None)
                self._cond.wait(None if next_due is None else max(next_due - now, 0.001))


slow_runs = SlowRuns()
