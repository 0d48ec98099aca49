"""What became of each event and each of its handlers: the order timeline and
the dashboard read this, never the tables behind it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mediator.delivery.models import (
    DeliveryProgress,
    InboxRecord,
    OutboxMessage,
    OutboxStatus,
    PoisonedTask,
    PoisonStatus,
    ProgressState,
)
from mediator.handlers.registry import handler_registry
from mediator.messages.envelope import subject_key

# A delivery's states, in the words the pages use.
WAITING = "waiting"  # committed, not yet handed to the broker (broker down: the relay will)
QUEUED = "queued"  # in the broker, no attempt started yet
RUNNING = "running"
RETRYING = "retrying"
DONE = "done"
POISONED = "poisoned"
DISCARDED = "discarded"
SETTLED_STATES = frozenset({DONE, POISONED, DISCARDED})


@dataclass(frozen=True)
class HandlerState:
    handler: str
    state: str
    attempt: int = 0
    at: datetime | None = None  # when it got to this state
    next_try_at: datetime | None = None
    error: str = ""

    @property
    def settled(self) -> bool:
        return self.state in SETTLED_STATES


@dataclass(frozen=True)
class EventTimeline:
    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    correlation_id: str
    payload: dict[str, Any]
    handlers: list[HandlerState] = field(default_factory=list)
    causation_id: str = ""  # the message (event or command) that caused this one
    caused_by: str = ""  # that event's type, when it is an event in this timeline

    @property
    def settled(self) -> bool:
        return all(h.settled for h in self.handlers)


def timeline(rows: Iterable[OutboxMessage]) -> list[EventTimeline]:
    """Each event (oldest first) with the state of every handler it was sent
    to, or, while it waits for the broker, every handler subscribed now."""
    rows = sorted(rows, key=lambda row: (row.occurred_at, row.pk))
    event_ids = [row.event_id for row in rows]
    done = {(r.event_id, r.handler): r for r in InboxRecord.objects.filter(event_id__in=event_ids)}
    poisoned = {
        (p.event_id, p.handler): p for p in PoisonedTask.objects.filter(event_id__in=event_ids)
    }
    in_progress = {
        (p.event_id, p.handler): p for p in DeliveryProgress.objects.filter(event_id__in=event_ids)
    }
    types = {str(row.event_id): row.event_type for row in rows}
    result = []
    for row in rows:
        if row.status == OutboxStatus.PENDING:
            names = [spec.name for spec in handler_registry.for_type(row.event_type)]
        else:
            names = list(row.handlers)
        states = [
            _state(
                row,
                name,
                done.get((row.event_id, name)),
                poisoned.get((row.event_id, name)),
                in_progress.get((row.event_id, name)),
            )
            for name in names
        ]
        result.append(
            EventTimeline(
                event_id=row.event_id,
                event_type=row.event_type,
                occurred_at=row.occurred_at,
                correlation_id=row.correlation_id,
                payload=row.payload,
                handlers=states,
                causation_id=row.causation_id,
                caused_by=types.get(row.causation_id, ""),
            )
        )
    return result


def _state(
    row: OutboxMessage,
    handler: str,
    done: InboxRecord | None,
    poisoned: PoisonedTask | None,
    progress: DeliveryProgress | None,
) -> HandlerState:
    if done is not None:
        return HandlerState(handler, DONE, at=done.handled_at)
    if poisoned is not None and poisoned.status == PoisonStatus.POISONED:
        return HandlerState(
            handler,
            POISONED,
            attempt=poisoned.attempts,
            at=poisoned.last_failed_at,
            error=poisoned.exception,
        )
    if poisoned is not None and poisoned.status == PoisonStatus.DISCARDED:
        return HandlerState(handler, DISCARDED, at=poisoned.resolved_at, error=poisoned.exception)
    # A retried poisoned row's older progress is stale: it counts from the retry on.
    if progress is not None and not (
        poisoned is not None and progress.updated_at < poisoned.last_failed_at
    ):
        if progress.state == ProgressState.RETRYING:
            return HandlerState(
                handler,
                RETRYING,
                attempt=progress.attempt,
                at=progress.updated_at,
                next_try_at=progress.next_try_at,
                error=progress.last_error,
            )
        return HandlerState(handler, RUNNING, attempt=progress.attempt, at=progress.updated_at)
    if row.status == OutboxStatus.PENDING:
        # Since it was published (a pending row's created_at is when the relay looks next).
        return HandlerState(handler, WAITING, at=row.occurred_at)
    return HandlerState(handler, QUEUED, at=row.dispatched_at)


def events_about(key: str, value: Any, *, limit: int = 200) -> list[EventTimeline]:
    """The timeline of the newest `limit` messages whose class is `about` the
    field `key` and whose `key` is `value` (all events about order 42:
    events_about("order_id", 42)). One indexed lookup, however many events the
    outbox holds."""
    rows = OutboxMessage.objects.filter(subject=subject_key(key, value)).order_by("-id")[:limit]
    return timeline(rows)
