"""The Celery side: one task per handler, and what it does with a delivery.

A delivery decodes the envelope, runs the handler through the behaviours
(mediator.pipeline; the transaction behaviour writes the inbox record in the
handler's transaction, so a redelivery is skipped), then decides: done,
retry with backoff, defer, or poison.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
import uuid
from typing import TYPE_CHECKING, Any, NoReturn

from celery import Task, shared_task
from celery.exceptions import Reject, Retry
from celery.signals import task_failure, task_unknown, worker_init
from django.db import DatabaseError

from mediator import metrics, poison, progress
from mediator.context import message_context
from mediator.events import Envelope
from mediator.exceptions import (
    CircuitOpen,
    Deferred,
    HandlerPoisoned,
    MessageError,
    UnknownHandler,
)
from mediator.logging import delivery_log_context
from mediator.pipeline import HandlerContext, run_pipeline
from mediator.registry import get_handler

if TYPE_CHECKING:
    from mediator.registry import HandlerSpec

logger = logging.getLogger("mediator.handler")

DONE = "done"
DUPLICATE = "duplicate"


def make_handler_task(spec: HandlerSpec) -> Task:
    options: dict[str, Any] = {
        "name": spec.name,
        "bind": True,
        # Ack after the run; requeue/retry when the pool process dies mid-run.
        "acks_late": True,
        "reject_on_worker_lost": True,
        # A process killed on every delivery must not loop forever: Celery 5.7
        # re-sends it as a retry, so deaths count against max_retries, and the
        # last one reaches task_failure below, which poisons it.
        "retry_on_worker_lost": True,
        "max_retries": spec.max_retries,
        "default_retry_delay": spec.backoff,
        # The inbox and PoisonedTask tables are the record of a handler run.
        "ignore_result": True,
        "typing": False,
    }
    # The queue is applied by mediator.routing (CELERY_TASK_ROUTES): Celery
    # deprecates the task attribute.
    for option in ("rate_limit", "soft_time_limit", "time_limit"):
        if getattr(spec, option) is not None:
            options[option] = getattr(spec, option)

    def run(self: Task, *args: Any, **kwargs: Any) -> str:
        return run_delivery(self, spec, args, kwargs)

    run.__name__ = spec.name.rsplit(".", 1)[-1]
    run.__qualname__ = run.__name__
    run.__module__ = spec.func.__module__
    run.__doc__ = spec.func.__doc__
    return shared_task(**options)(run)


def delivery_task_id(event_id: uuid.UUID | str, handler: str) -> str:
    """The same (event, handler) always gets the same task id: a re-sent
    delivery is recognisable in Flower and in the logs."""
    return str(uuid.uuid5(uuid.UUID(str(event_id)), handler))


def run_delivery(
    task: Task, spec: HandlerSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    request = task.request
    kwargs = dict(kwargs)
    poisoned_retry = bool(kwargs.pop("poisoned_retry", False))
    retries = request.retries or 0
    attempt = retries + 1
    message = args[0] if args else None
    try:
        if len(args) != 1 or kwargs:
            raise UnknownHandler(
                f"{spec.name} takes one event envelope; got {len(args)} positional "
                f"argument(s) and keyword(s) {sorted(kwargs)}."
            )
        envelope = Envelope.from_message(message)
        event = envelope.event()
        if not isinstance(event, spec.event_types):
            raise UnknownHandler(f"{spec.name} does not handle {envelope.event_type}.")
    except MessageError as exc:
        _poison(task, spec, message, exc, attempt)
        raise HandlerPoisoned(f"{type(exc).__name__}: {exc}") from exc

    context = HandlerContext(
        spec=spec,
        message_id=envelope.event_id,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
        attempt=attempt,
        delivered=True,
    )
    with delivery_log_context(
        event_id=str(envelope.event_id),
        event_type=envelope.event_type,
        handler=spec.name,
        attempt=attempt,
        correlation_id=envelope.correlation_id or "-",
        causation_id=envelope.causation_id or "-",
    ):
        progress.record_running(envelope.event_id, spec.name, attempt)
        with message_context(
            correlation_id=envelope.correlation_id,
            causation_id=str(envelope.event_id),
            handling=envelope.event_id,
        ):
            try:
                run_pipeline(event, context)
            except Exception as exc:
                if isinstance(exc, Deferred):
                    logger.info("%s deferred %.1fs: %s", spec.name, exc.countdown, exc)
                    reason = "breaker" if isinstance(exc, CircuitOpen) else "deferred"
                    metrics.DEFERRALS.labels(spec.name, reason).inc()
                    progress.record_retrying(
                        envelope.event_id, spec.name, attempt, exc.countdown, exc
                    )
                    # Not a retry: the re-sent task keeps this retry count, so
                    # neither our budget nor Celery's worker-lost limit is spent.
                    request.retries = retries - 1
                    _retry(task, exc, countdown=exc.countdown, max_retries=sys.maxsize)
                if spec.should_retry(exc) and retries < spec.max_retries:
                    countdown = spec.countdown(retries)
                    logger.warning(
                        "%s on %s %s (attempt %d) failed with %s: %s; retrying in %.1fs",
                        spec.name, envelope.event_type, envelope.event_id, attempt,
                        type(exc).__name__, exc, countdown,
                    )  # fmt: skip
                    metrics.RETRIES.labels(spec.name).inc()
                    progress.record_retrying(envelope.event_id, spec.name, attempt, countdown, exc)
                    _retry(task, exc, countdown=countdown)
                _poison(task, spec, message, exc, attempt)
                logger.error(
                    "%s poisoned on attempt %d: %s: %s", spec.name, attempt, type(exc).__name__, exc
                )
                raise HandlerPoisoned(f"{type(exc).__name__}: {exc}") from exc
        if poisoned_retry:
            poison.mark_resolved(event_id=envelope.event_id, handler=spec.name)
        return DUPLICATE if context.duplicate else DONE


def _poison(task: Task, spec: HandlerSpec, message: Any, exc: BaseException, attempt: int) -> None:
    try:
        poison.record(
            handler=spec.name,
            message=message,
            exception=exc,
            traceback_text="".join(traceback.format_exception(exc)),
            attempts=attempt,
            task_id=task.request.id or "",
        )
    except DatabaseError as db_exc:
        # No record, no ack: keep the message alive until the database is back
        # (max_retries=None would mean "the task's limit", already spent).
        _retry(task, db_exc, countdown=spec.backoff_max, max_retries=sys.maxsize)


def _retry(task: Task, exc: Exception, *, countdown: float, **options: Any) -> NoReturn:
    try:
        raise task.retry(exc=exc, countdown=countdown, **options)
    except Reject as no_retry:
        # Celery could not publish the retry (the broker is down) and would drop
        # the message. Put it back instead, after a short pause so a broker that
        # takes requeues but not publishes cannot spin us in a tight loop.
        reason = getattr(no_retry, "reason", no_retry)
        logger.warning("could not schedule a retry (%s); requeueing the delivery", reason)
        time.sleep(min(countdown, 1.0))
        raise Reject(reason, requeue=True) from exc


@worker_init.connect
def _warm_up_poison_records(**_: Any) -> None:
    poison.ForkGuard.warm_up()


@task_failure.connect
def _poison_lost_or_timed_out(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """Failures that never reach run_delivery's except-clause: a pool process
    that died (WorkerLostError, after retry_on_worker_lost ran out) or a hard
    time limit. Celery calls only this signal for them, in the main process."""
    spec = get_handler(getattr(sender, "name", "") or "")
    if spec is None or sender is None or isinstance(exception, HandlerPoisoned | Retry):
        return
    retries = getattr(sender.request, "retries", 0) or 0
    poison.record_in_background(
        only_if_not_done=True,
        handler=spec.name,
        message=args[0] if args else None,
        exception=exception or RuntimeError("unknown failure"),
        traceback_text=str(einfo or ""),
        attempts=retries + 1,
        task_id=task_id or "",
    )


@task_unknown.connect
def _poison_unknown_handler(
    message: Any = None, name: str | None = None, id: str | None = None, **_: Any
) -> None:
    """A message for a handler task this worker does not have (renamed or
    removed since it was published). Celery drops it; we keep it, poisoned."""
    try:
        args = message.decode()[0] if message is not None else []
    except Exception:
        args = []
    envelope = args[0] if args and isinstance(args[0], dict) else None
    if envelope is None or "event_type" not in envelope:
        return  # not one of ours
    poison.record_in_background(
        handler=name or "?",
        message=envelope,
        exception=UnknownHandler(f"No handler task named {name!r} is registered in this worker."),
        traceback_text="",
        attempts=1,
        task_id=id or "",
    )


@shared_task(name="mediator.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    """The beat-scheduled sweep: dispatch rows the after-commit path missed,
    and re-send deliveries the broker lost."""
    from mediator.relay import sweep

    result = sweep()
    return result.relayed.dispatched + result.reconciled.redelivered
