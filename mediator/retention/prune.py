"""Deleting what the mediator has finished with, in short batches.

Run hourly by beat (the `mediator.prune` task) and by `manage.py prune_mediator`.
Kept whatever their age: open and retried poisoned rows (the record of a
failure), stuck saga runs, undispatched and unsettled outbox rows, and the
inbox records of events whose outbox row is not yet settled (the reconciler
may still re-send them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.apps import apps
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from mediator.delivery.models import (
    DeliveryProgress,
    InboxRecord,
    OutboxMessage,
    OutboxStatus,
    PoisonedTask,
    PoisonStatus,
)
from mediator.retention.policy import RetentionPolicy
from mediator.sagas.models import RunState, SagaRun

logger = logging.getLogger("mediator.retention")


@dataclass
class PruneResult:
    deleted: dict[str, int] = field(default_factory=dict)  # by table: "mediator.InboxRecord"

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def prunable(policy: RetentionPolicy, now: datetime | None = None) -> dict[str, QuerySet[Any]]:
    """What the policy deletes, as of `now`, by table."""
    now = now or timezone.now()

    def before(age: timedelta) -> datetime:
        return now - age

    found: dict[str, QuerySet[Any]] = {}
    if policy.outbox is not None:
        found["mediator.OutboxMessage"] = OutboxMessage.objects.filter(
            Q(status=OutboxStatus.DISPATCHED, settled_at__lt=before(policy.outbox))
            | Q(status=OutboxStatus.NO_HANDLERS, created_at__lt=before(policy.outbox))
        )
    if policy.inbox is not None:
        unsettled = OutboxMessage.objects.filter(
            event_id=OuterRef("event_id"), settled_at__isnull=True
        ).exclude(status=OutboxStatus.NO_HANDLERS)
        found["mediator.InboxRecord"] = InboxRecord.objects.filter(
            handled_at__lt=before(policy.inbox)
        ).exclude(Exists(unsettled))
    if policy.progress is not None:
        found["mediator.DeliveryProgress"] = DeliveryProgress.objects.filter(
            updated_at__lt=before(policy.progress)
        )
    if policy.poisoned is not None:
        found["mediator.PoisonedTask"] = PoisonedTask.objects.filter(
            status__in=[PoisonStatus.RESOLVED, PoisonStatus.DISCARDED],
            resolved_at__lt=before(policy.poisoned),
        )
    if policy.sagas is not None:
        found["mediator.SagaRun"] = SagaRun.objects.filter(
            state__in=[RunState.COMPLETED, RunState.COMPENSATED],
            finished_at__lt=before(policy.sagas),
        )
    for label, (column, age) in policy.models.items():
        model = apps.get_model(label)
        found[label] = model._default_manager.filter(**{f"{column}__lt": before(age)})
    return found


def prune(policy: RetentionPolicy | None = None, *, now: datetime | None = None) -> PruneResult:
    """Delete, batch by batch (each its own short statement), every row the
    policy no longer keeps."""
    policy = policy or RetentionPolicy.from_settings()
    result = PruneResult()
    for label, rows in prunable(policy, now).items():
        result.deleted[label] = delete_in_batches(rows, policy.batch_size)
    if result.total:
        logger.info(
            "pruned %s", ", ".join(f"{n} {label}" for label, n in result.deleted.items() if n)
        )
    return result


def delete_in_batches(rows: QuerySet[Any], batch_size: int) -> int:
    deleted = 0
    while True:
        ids = list(rows.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        rows.model._default_manager.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted


@shared_task(name="mediator.prune", ignore_result=True)
def prune_task() -> int:
    """The beat-scheduled pruning (MEDIATOR["RETENTION"])."""
    return prune().total
