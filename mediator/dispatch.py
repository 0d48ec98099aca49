"""Sending outbox rows to the broker: one task per subscribed handler.

Used right after commit (fast path) and by the relay (the sweep). A row is
marked dispatched only once every one of its tasks is with the broker; a row
whose publish failed stays pending for the relay, and the inbox makes the
tasks it had already sent harmless when they are sent again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from django.db.models import F
from django.utils import timezone

from mediator.conf import mediator_settings
from mediator.models import OutboxMessage, OutboxStatus
from mediator.registry import handlers_for
from mediator.tasks import delivery_task_id

logger = logging.getLogger("mediator.dispatch")


@dataclass
class DispatchResult:
    dispatched: int = 0
    no_handlers: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def publish_retry_policy() -> dict[str, Any]:
    conf = mediator_settings()
    interval = float(conf["PUBLISH_RETRY_INTERVAL"])
    return {
        "max_retries": int(conf["PUBLISH_MAX_RETRIES"]),
        "interval_start": 0,
        "interval_step": interval,
        "interval_max": interval,
    }


def dispatch(rows: Sequence[tuple[int, dict[str, Any]]]) -> DispatchResult:
    """Publish the tasks of (row id, envelope message) pairs, in order, over one
    producer connection; then mark what was sent. Raises nothing broker-related."""
    result = DispatchResult()
    sent: dict[tuple[str, ...], list[int]] = defaultdict(list)
    no_handlers: list[int] = []
    failed: list[int] = []
    policy = publish_retry_policy()
    try:
        with current_app.producer_or_acquire() as producer:
            for index, (row_id, message) in enumerate(rows):
                specs = handlers_for(message["event_type"])
                if not specs:
                    no_handlers.append(row_id)
                    continue
                try:
                    for spec in specs:
                        spec.task.apply_async(
                            args=(message,),
                            task_id=delivery_task_id(message["event_id"], spec.name),
                            producer=producer,
                            retry=True,
                            retry_policy=policy,
                        )
                except Exception as exc:
                    # The broker is unreachable: the rest would fail the same way.
                    failed = [row_id] + [r for r, _ in rows[index + 1 :]]
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    break
                sent[tuple(spec.name for spec in specs)].append(row_id)
    except Exception as exc:  # acquiring the producer itself failed
        done = {r for ids in sent.values() for r in ids} | set(no_handlers)
        failed = [row_id for row_id, _ in rows if row_id not in done]
        result.errors.append(f"{type(exc).__name__}: {exc}")

    now = timezone.now()
    pending = OutboxMessage.objects.filter(status=OutboxStatus.PENDING)
    for handler_names, ids in sent.items():
        pending.filter(pk__in=ids).update(
            status=OutboxStatus.DISPATCHED, dispatched_at=now, handlers=list(handler_names),
            dispatch_attempts=F("dispatch_attempts") + 1, last_error="",
        )  # fmt: skip
        result.dispatched += len(ids)
    if no_handlers:
        pending.filter(pk__in=no_handlers).update(
            status=OutboxStatus.NO_HANDLERS, dispatched_at=now, handlers=[]
        )
        result.no_handlers = len(no_handlers)
    if failed:
        error = result.errors[-1][:2000]
        pending.filter(pk__in=failed).update(
            dispatch_attempts=F("dispatch_attempts") + 1, last_error=error
        )
        result.failed = len(failed)
        logger.warning(
            "broker unreachable: %d outbox row(s) left pending for the relay: %s",
            len(failed), error,
        )  # fmt: skip
    return result


def dispatch_after_commit(row_id: int, message: dict[str, Any]) -> None:
    """The on_commit callback. It must never raise: Django would skip the
    callbacks registered after it (and so the events published after it)."""
    try:
        dispatch([(row_id, message)])
    except Exception:
        logger.exception("dispatch of outbox row %s failed; the relay will retry it", row_id)
