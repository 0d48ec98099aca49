"""Poisoned deliveries: recording them, and the operator's retry and discard."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from importlib import import_module
from typing import Any

from celery import current_app
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.models import CharField
from django.utils import timezone

from mediator.delivery import storable
from mediator.delivery.dispatch import send_task
from mediator.delivery.models import InboxRecord, PoisonedTask, PoisonStatus
from mediator.exceptions import MalformedMessage, UnknownHandler
from mediator.handlers.registry import handler_registry
from mediator.messages.envelope import Envelope
from mediator.signals import delivery_poisoned

logger = logging.getLogger("mediator.poison")


def _length(column: str) -> int:
    field = PoisonedTask._meta.get_field(column)
    assert isinstance(field, CharField)
    return int(field.max_length or 0)


HANDLER_LENGTH, EVENT_TYPE_LENGTH, TASK_ID_LENGTH = map(
    _length, ["handler", "event_type", "task_id"]
)


def record(
    *,
    handler: str,
    message: Any,
    exception: BaseException,
    traceback_text: str,
    attempts: int,
    task_id: str,
) -> PoisonedTask:
    """Write (or update: one row per event and handler) the poisoned delivery,
    and run the delivery_poisoned receivers in the same transaction: a saga
    run is marked stuck (or its step failed) together with the row, or neither
    is written and the reconciler sends the delivery again later.

    Whatever the message holds, a row is written (mediator.delivery.storable
    makes every field one the database takes). Should the database still
    refuse the record (DataError, IntegrityError, or a delivery_poisoned
    receiver that fails), a minimal row is written instead: handler, task id,
    exception and why the rest is missing; then the same without the
    receivers. Only an unreachable database (OperationalError,
    InterfaceError) raises: the caller keeps the message for later.
    """
    envelope = message if isinstance(message, dict) else {}
    event_id = _uuid_or_none(envelope.get("event_id"))
    now = timezone.now()
    values = {
        "event_type": storable.text(envelope.get("event_type", ""), EVENT_TYPE_LENGTH),
        "payload": storable.payload(message),
        "exception": storable.text(f"{type(exception).__name__}: {exception}", storable.TEXT_LIMIT),
        "traceback": storable.text(traceback_text, storable.TEXT_LIMIT, keep="tail"),
        "attempts": attempts,
        "status": PoisonStatus.POISONED,
        "task_id": storable.text(task_id, TASK_ID_LENGTH),
        "last_failed_at": now,
        "resolved_at": None,
    }
    key = (event_id, storable.text(handler, HANDLER_LENGTH))
    logger.error(
        "poisoned: %s on %s %s after %d attempt(s): %s",
        handler, values["event_type"], event_id, attempts, values["exception"],
    )  # fmt: skip
    try:
        return _write(key, values, handler, message)
    except (OperationalError, InterfaceError):
        raise
    except Exception as refused:
        logger.exception("the database refused the poisoned record of %s; writing less", handler)
        why = f"{type(refused).__name__}: {refused}"
    minimal = {
        **values,
        "payload": None,
        "traceback": "",
        "exception": storable.text(values["exception"], 2000)
        + storable.text(f"\n[payload and traceback not stored: {why}]", 1000),
    }
    try:
        return _write(key, minimal, handler, message)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        logger.exception("the delivery_poisoned receivers failed for %s; row only", handler)
    return _write(key, minimal, handler, None)


def _write(
    key: tuple[uuid.UUID | None, str], values: dict[str, Any], handler: str, message: Any
) -> PoisonedTask:
    """One attempt at the row; the receivers too, unless `message` is None."""
    event_id, column_handler = key
    now = values["last_failed_at"]
    with transaction.atomic():
        if event_id is None:
            row = PoisonedTask.objects.create(handler=column_handler, first_failed_at=now, **values)
        else:
            row, _ = PoisonedTask.objects.update_or_create(
                event_id=event_id,
                handler=column_handler,
                defaults=values,
                create_defaults={**values, "first_failed_at": now},
            )
        if message is not None:
            delivery_poisoned.send(
                sender=PoisonedTask,
                row=row,
                handler=handler,
                message=message,
                error=values["exception"],
            )
    return row


def record_in_background(*, only_if_not_done: bool = False, **fields: Any) -> threading.Thread:
    """record() on a thread of its own, for the worker's main process.

    The main process must not wait on the database: on SQLite a handler past
    its hard time limit still holds the write lock until the main process has
    killed it, which it does only after the failure callbacks return. If the
    write fails anyway, the reconciler later finds the delivery neither done
    nor poisoned and sends it again. With only_if_not_done, a delivery whose
    inbox record exists (it committed before its process died) is left alone.
    """

    def run() -> None:
        with ForkGuard.lock:
            _record(only_if_not_done, fields)

    thread = threading.Thread(target=run, name="mediator-record-poison")
    thread.start()
    return thread


class ForkGuard:
    """The prefork pool forks a replacement for a pool process that died while
    a record thread may be running. A child forked mid-write inherits the
    thread's locks (a half-taken import lock, Django's connection state) but not
    the thread that would release them: it hangs on its first query while
    holding SQLite's write lock, and every other process then fails with
    "database is locked". So a fork waits for the record, for at most
    FORK_WAIT_SECONDS (the main process runs the pool's timers meanwhile), and
    warm_up() imports beforehand what a record thread would import lazily."""

    FORK_WAIT_SECONDS = 10.0
    lock = threading.Lock()
    held = False

    @classmethod
    def before_fork(cls) -> None:
        cls.held = cls.lock.acquire(timeout=cls.FORK_WAIT_SECONDS)
        if not cls.held:
            logger.warning(
                "forking while a poisoned task is still being recorded (waited %.0f s)",
                cls.FORK_WAIT_SECONDS,
            )

    @classmethod
    def after_fork(cls) -> None:
        if cls.held:
            cls.held = False
            cls.lock.release()

    @staticmethod
    def warm_up() -> None:
        """For the worker's main process, before its pool forks."""
        for alias in connections:
            import_module(connections[alias].ops.compiler_module)


os.register_at_fork(
    before=ForkGuard.before_fork,
    after_in_parent=ForkGuard.after_fork,
    after_in_child=ForkGuard.after_fork,
)


def _record(only_if_not_done: bool, fields: dict[str, Any]) -> None:
    try:
        if only_if_not_done and _done(fields.get("message"), fields["handler"]):
            logger.info("%s had committed before it was lost; not poisoned", fields["handler"])
            return
        record(**fields)
    except Exception:
        logger.exception("could not record poisoned task for %s", fields.get("handler"))
    finally:
        connections.close_all()


def mark_resolved(*, event_id: uuid.UUID, handler: str) -> None:
    PoisonedTask.objects.filter(
        event_id=event_id, handler=handler, status=PoisonStatus.RETRIED
    ).update(status=PoisonStatus.RESOLVED, resolved_at=timezone.now())


def retry(row: PoisonedTask) -> str:
    """Enqueue a fresh attempt with a fresh retry budget. The row says
    `retried` until that attempt succeeds (then `resolved`) or fails again.
    A payload that is not an envelope (a message Celery could not decode)
    cannot be retried: MalformedMessage says why. Returns the new task's id."""
    if handler_registry.get(row.handler) is None:
        raise UnknownHandler(f"No handler named {row.handler!r} is registered; cannot retry.")
    if not isinstance(row.payload, dict):
        raise UnknownHandler(f"Poisoned task {row.pk} has no event envelope to retry.")
    if (form := storable.stored_otherwise(row.payload)) is not None:
        raise MalformedMessage(
            f"Poisoned task {row.pk} kept its message as {form}, not as an envelope: "
            "it cannot be retried."
        )
    message = Envelope.from_message(row.payload).to_message()
    previous = row.status
    claimed = PoisonedTask.objects.filter(
        pk=row.pk, status__in=[PoisonStatus.POISONED, PoisonStatus.RETRIED]
    ).update(status=PoisonStatus.RETRIED)
    if not claimed:
        raise UnknownHandler(f"Poisoned task {row.pk} is no longer poisoned; not retried.")
    try:
        task_id = send_task(current_app, row.handler, message, kwargs={"poisoned_retry": True})
    except Exception:
        PoisonedTask.objects.filter(pk=row.pk).update(status=previous)
        raise
    PoisonedTask.objects.filter(pk=row.pk).update(task_id=task_id)
    return task_id


def discard(row: PoisonedTask) -> bool:
    """Whether this call discarded it (False: no longer poisoned)."""
    return bool(
        PoisonedTask.objects.filter(pk=row.pk, status=PoisonStatus.POISONED).update(
            status=PoisonStatus.DISCARDED, resolved_at=timezone.now()
        )
    )


def _done(message: Any, handler: str) -> bool:
    event_id = _uuid_or_none(message.get("event_id")) if isinstance(message, dict) else None
    return (
        event_id is not None
        and InboxRecord.objects.filter(event_id=event_id, handler=handler).exists()
    )


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
