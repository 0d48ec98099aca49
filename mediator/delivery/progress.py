"""Recording where a delivery stands between dispatch and done/poisoned.

Advisory only: the inbox record and the poisoned row decide what happened. A
progress write that fails is logged and ignored; it never fails a delivery.
"Running" is written only for runs that last (mediator.worker.slow_runs).
MEDIATOR["TRACK_PROGRESS"] = False writes nothing here (the timeline then
shows "queued" until a delivery is done or poisoned).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db import DatabaseError
from django.utils import timezone

from mediator.conf import mediator_settings
from mediator.delivery.models import DeliveryProgress, ProgressState

logger = logging.getLogger("mediator.progress")

_UPDATED = ["state", "attempt", "next_try_at", "last_error", "updated_at"]


def record_running(event_id: uuid.UUID, handler: str, attempt: int) -> None:
    _upsert(
        DeliveryProgress(
            event_id=event_id, handler=handler, state=ProgressState.RUNNING, attempt=attempt
        )
    )


def record_retrying(
    event_id: uuid.UUID, handler: str, attempt: int, countdown: float, error: BaseException
) -> None:
    _upsert(
        DeliveryProgress(
            event_id=event_id,
            handler=handler,
            state=ProgressState.RETRYING,
            attempt=attempt,
            next_try_at=timezone.now() + timedelta(seconds=countdown),
            last_error=f"{type(error).__name__}: {error}"[:2000],
        )
    )


def _upsert(row: DeliveryProgress) -> None:
    if not mediator_settings()["TRACK_PROGRESS"]:
        return
    row.updated_at = timezone.now()
    try:
        DeliveryProgress.objects.bulk_create(
            [row],
            update_conflicts=True,
            unique_fields=["event_id", "handler"],
            update_fields=_UPDATED,
        )
    except DatabaseError as exc:
        logger.warning("could not record progress of %s: %s", row, exc)
