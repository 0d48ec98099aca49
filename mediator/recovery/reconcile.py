"""The reconciler: deliveries the broker lost.

Once a row is dispatched, its tasks live only in the broker. If Redis restarts
without persistence, is flushed, or fails over to a replica that had not yet
received them, they are gone. A delivery (event, handler) counts as settled
when its inbox record or its poisoned row exists; one that is neither, long
after it was dispatched, is sent again. The inbox makes a needless resend a
skipped duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from mediator.conf import mediator_settings
from mediator.delivery.dispatch import Delivery, send
from mediator.delivery.mapping import wire_message
from mediator.delivery.models import (
    DeliveryProgress,
    InboxRecord,
    OutboxMessage,
    OutboxStatus,
    PoisonedTask,
    PoisonStatus,
)

logger = logging.getLogger("mediator.reconcile")


def unsettled_rows(redeliver_after: float | None = None) -> QuerySet[OutboxMessage]:
    """Dispatched rows not yet found settled, dispatched before the bound."""
    if redeliver_after is None:
        redeliver_after = mediator_settings()["REDELIVER_AFTER_SECONDS"]
    cutoff = timezone.now() - timedelta(seconds=redeliver_after)
    return OutboxMessage.objects.filter(
        status=OutboxStatus.DISPATCHED, settled_at__isnull=True, dispatched_at__lte=cutoff
    ).order_by("dispatched_at", "id")


def missing_handlers(rows: list[OutboxMessage]) -> dict[int, tuple[str, ...]]:
    """For each row, the handlers with neither an inbox record nor a poisoned
    row (a poisoned row an operator has re-enqueued counts as in flight)."""
    event_ids = [row.event_id for row in rows]
    settled: set[tuple[object, str]] = set(
        InboxRecord.objects.filter(event_id__in=event_ids).values_list("event_id", "handler")
    )
    settled |= set(
        PoisonedTask.objects.filter(event_id__in=event_ids)
        .exclude(status=PoisonStatus.RETRIED)
        .values_list("event_id", "handler")
    )
    return {
        row.pk: tuple(h for h in row.handlers if (row.event_id, h) not in settled) for row in rows
    }


@dataclass
class ReconcileResult:
    examined: int = 0  # rows
    settled: int = 0  # rows found settled
    redelivered: int = 0  # deliveries (event x handler) sent again
    failed: int = 0  # deliveries the broker refused
    errors: list[str] = field(default_factory=list)

    def add(self, other: ReconcileResult) -> None:
        self.examined += other.examined
        self.settled += other.settled
        self.redelivered += other.redelivered
        self.failed += other.failed
        self.errors += other.errors


def reconcile_pass(
    *, redeliver_after: float | None = None, batch_size: int | None = None
) -> ReconcileResult:
    """Reconcile batch after batch until every overdue row was looked at once,
    or the broker refuses."""
    batch = int(batch_size or mediator_settings()["RELAY_BATCH_SIZE"])
    total = ReconcileResult()
    while True:
        result = reconcile_once(redeliver_after=redeliver_after, batch_size=batch)
        total.add(result)
        if result.examined < batch or result.failed:
            return total


def reconcile_once(
    *, redeliver_after: float | None = None, batch_size: int | None = None
) -> ReconcileResult:
    """One batch of unsettled rows dispatched before the bound: mark the
    settled ones, send the lost deliveries of the others again (and move their
    dispatch time, so they are looked at again only after another bound)."""
    batch = int(batch_size or mediator_settings()["RELAY_BATCH_SIZE"])
    result = ReconcileResult()
    with transaction.atomic():
        qs = unsettled_rows(redeliver_after)
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        rows = list(qs[:batch])
        if not rows:
            return result
        result.examined = len(rows)
        missing = missing_handlers(rows)
        now = timezone.now()
        settled = [row.pk for row in rows if not missing[row.pk]]
        result.settled = OutboxMessage.objects.filter(pk__in=settled).update(settled_at=now)
        # Progress rows only matter until a delivery settles.
        DeliveryProgress.objects.filter(
            event_id__in=[row.event_id for row in rows if not missing[row.pk]]
        ).delete()
        lost = [
            Delivery(row.pk, wire_message(row), missing[row.pk]) for row in rows if missing[row.pk]
        ]
        outcome = send(lost)
        OutboxMessage.objects.filter(pk__in=[d.row_id for d in outcome.sent]).update(
            dispatched_at=now, redeliveries=F("redeliveries") + 1
        )
    result.redelivered = sum(len(d.handlers) for d in outcome.sent)
    result.failed = sum(len(d.handlers) for d in outcome.failed)
    if outcome.error:
        result.errors.append(outcome.error)
    if result.redelivered:
        logger.warning(
            "re-sent %d delivery(ies) the broker lost (dispatched but neither done nor "
            "poisoned after the redelivery bound)", result.redelivered,
        )  # fmt: skip
    return result


def overdue_deliveries(*, redeliver_after: float | None = None, limit: int = 10_000) -> int:
    """Deliveries dispatched before the bound and neither done nor poisoned."""
    rows = list(unsettled_rows(redeliver_after).only("id", "event_id", "handlers")[:limit])
    return sum(len(handlers) for handlers in missing_handlers(rows).values())
