"""The relay: dispatch outbox rows the after-commit path did not (broker down
at commit, process killed between commit and publish)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from mediator.conf import mediator_settings
from mediator.delivery.dispatch import BrokerDownPause, DispatchResult, dispatch
from mediator.delivery.mapping import COLUMNS, wire_message
from mediator.delivery.models import OutboxMessage, OutboxStatus

logger = logging.getLogger("mediator.relay")

SQLITE_MAX_BATCH = 200  # SQLite locks the whole database while a batch is published


def relay_once(
    *, batch_size: int | None = None, grace_seconds: float | None = None
) -> DispatchResult:
    """Dispatch one batch of rows pending for longer than the grace period.

    The rows stay locked (FOR UPDATE SKIP LOCKED on PostgreSQL) until they are
    marked, so relays running at once never send the same row twice; on
    SQLite the write transaction serialises relays instead.
    """
    conf = mediator_settings()
    batch = int(batch_size or conf["RELAY_BATCH_SIZE"])
    grace = conf["RELAY_GRACE_SECONDS"] if grace_seconds is None else grace_seconds
    if connection.vendor == "sqlite":
        batch = min(batch, SQLITE_MAX_BATCH)
    cutoff = timezone.now() - timedelta(seconds=grace)
    with transaction.atomic():
        rows = OutboxMessage.objects.filter(
            status=OutboxStatus.PENDING, created_at__lte=cutoff
        ).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        batch_rows = [(row.pk, wire_message(row)) for row in rows.only(*COLUMNS)[:batch]]
        if not batch_rows:
            return DispatchResult()
        result = dispatch(batch_rows)
    BrokerDownPause.record(result)
    return result


def relay_pending(
    *, batch_size: int | None = None, grace_seconds: float | None = None
) -> DispatchResult:
    """Relay batches until none is left or the broker refuses one."""
    total = DispatchResult()
    while True:
        result = relay_once(batch_size=batch_size, grace_seconds=grace_seconds)
        total.add(result)
        # Rows left waiting for a handler were moved out of the scan: go on.
        if result.failed or (result.dispatched + result.no_handlers + result.waiting) == 0:
            return total
