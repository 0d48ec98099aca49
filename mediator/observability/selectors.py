"""Read-only questions operators ask of the mediator (health, dashboard)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, Min, OuterRef
from django.utils import timezone

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
from mediator.recovery.reconcile import overdue_deliveries
from mediator.sagas.models import RunState, SagaRun

__all__ = [
    "HandlerCounts",
    "events_per_type",
    "handler_counts",
    "open_poisoned_count",
    "outbox_lag_seconds",
    "overdue_deliveries",
    "pending_count",
    "saga_run",
]


def saga_run(run_id: uuid.UUID) -> SagaRun | None:
    """A run with its steps, in order (run.steps.all() reads no more rows)."""
    return SagaRun.objects.prefetch_related("steps").filter(pk=run_id).first()


def unfinished_saga_runs() -> list[tuple[str, str, int]]:
    """(saga, state, runs) for runs not yet completed or compensated."""
    rows = (
        SagaRun.objects.filter(state__in=[RunState.RUNNING, RunState.COMPENSATING, RunState.STUCK])
        .values_list("saga", "state")
        .annotate(runs=Count("pk"))
        .order_by("saga", "state")
    )
    return [(saga, state, runs) for saga, state, runs in rows]


def pending_count() -> int:
    return OutboxMessage.objects.filter(status=OutboxStatus.PENDING).count()


def open_poisoned_count() -> int:
    return PoisonedTask.objects.filter(status=PoisonStatus.POISONED).count()


def outbox_lag_seconds() -> float:
    """Age of the oldest event due but not yet handed to the broker (0 when
    none). A task enqueued to run later is due at its created_at."""
    oldest = OutboxMessage.objects.filter(
        status=OutboxStatus.PENDING, created_at__lte=timezone.now()
    ).aggregate(oldest=Min("created_at"))["oldest"]
    return 0.0 if oldest is None else (timezone.now() - oldest).total_seconds()


@dataclass(frozen=True)
class HandlerCounts:
    handler: str
    done: int  # in the window
    retrying: int  # now
    poisoned: int  # open (not retried, resolved or discarded)


def events_per_type(since: datetime) -> dict[str, int]:
    rows = (
        OutboxMessage.objects.filter(created_at__gte=since)
        .values("event_type")
        .annotate(n=Count("id"))
        .order_by("event_type")
    )
    return {row["event_type"]: row["n"] for row in rows}


def handler_counts(since: datetime) -> list[HandlerCounts]:
    """Per handler: runs done since `since`, deliveries retrying now, open poisoned rows."""
    done = dict(
        InboxRecord.objects.filter(handled_at__gte=since)
        .values("handler")
        .annotate(n=Count("id"))
        .values_list("handler", "n")
    )
    settled = InboxRecord.objects.filter(event_id=OuterRef("event_id"), handler=OuterRef("handler"))
    retrying = dict(
        DeliveryProgress.objects.filter(state=ProgressState.RETRYING)
        .exclude(Exists(settled))
        .values("handler")
        .annotate(n=Count("id"))
        .values_list("handler", "n")
    )
    poisoned = dict(
        PoisonedTask.objects.filter(status=PoisonStatus.POISONED)
        .values("handler")
        .annotate(n=Count("id"))
        .values_list("handler", "n")
    )
    names = sorted(
        {spec.name for spec in handler_registry.all()} | set(done) | set(retrying) | set(poisoned)
    )
    return [
        HandlerCounts(name, done.get(name, 0), retrying.get(name, 0), poisoned.get(name, 0))
        for name in names
    ]
