"""Waiting for a worker to finish what a test dispatched.

A test that ran a real worker must not end while a handler is still running:
the test database is flushed after it, and on PostgreSQL truncating tables
under a running handler deadlocks. Settled means every delivery of every
dispatched event is in the inbox or poisoned, and no saga run is still going.
"""

from __future__ import annotations

from collections.abc import Collection

from mediator.delivery.models import InboxRecord, OutboxMessage, OutboxStatus, PoisonedTask
from mediator.handlers.registry import handler_registry
from mediator.sagas.models import RunState, SagaRun
from mediator.testing.waiting import wait_for


def unsettled(*, pending_types: Collection[str] | None = None) -> list[str]:
    """What is still on its way, one line each.

    Pending outbox rows count when their event type is in `pending_types`;
    with None, every pending row that was never tried is waited for (one a
    handler published is dispatched once that handler's transaction commits).
    Handlers on a queue of their own are skipped: a test worker consumes the
    default queue only, unless the test started one for that queue.
    """
    pending = OutboxMessage.objects.filter(status=OutboxStatus.PENDING)
    if pending_types is None:
        pending = pending.filter(dispatch_attempts=0, last_error="")
    else:
        pending = pending.filter(event_type__in=list(pending_types))
    waiting = [f"{row.event_type} {row.event_id} (pending)" for row in pending]
    for row in OutboxMessage.objects.filter(status=OutboxStatus.DISPATCHED):
        for handler in row.handlers:
            spec = handler_registry.get(handler)
            if spec is not None and spec.queue:
                continue
            if not (
                InboxRecord.objects.filter(event_id=row.event_id, handler=handler).exists()
                or PoisonedTask.objects.filter(event_id=row.event_id, handler=handler).exists()
            ):
                waiting.append(f"{handler} of {row.event_type} {row.event_id}")
    waiting += [
        f"saga run {run.pk} ({run.state})"
        for run in SagaRun.objects.filter(state__in=[RunState.RUNNING, RunState.COMPENSATING])
    ]
    return waiting


def settle(*, timeout: float = 60.0, pending_types: Collection[str] | None = None) -> None:
    """Wait until nothing is unsettled(); fail after `timeout` seconds, naming what was left."""
    left: list[str] = []

    def settled() -> bool:
        left[:] = unsettled(pending_types=pending_types)
        return not left

    try:
        wait_for(settled, timeout=timeout, interval=0.1, message="deliveries to settle")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; still unsettled: {left}") from None
