"""One delivery in a worker: decode → run → decide → carry out.

Decode reads the envelope and the typed message (a message that cannot be
read is poisoned at once). Run puts it through the behaviours and the inbox
transaction (mediator.delivery.inbox: a redelivery is skipped). Decide is
pure (mediator.worker.outcome). Carrying out the outcome is the only part
that talks to Celery: schedule a retry, defer, or record the poisoned
delivery and fail the task so Flower shows it.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Reject
from django.db import InterfaceError, OperationalError

from mediator.delivery import poison, progress
from mediator.delivery.inbox import exactly_once
from mediator.exceptions import HandlerPoisoned, MessageError, UnknownHandler
from mediator.handlers.pipeline import HandlerContext, run_pipeline
from mediator.handlers.spec import HandlerSpec
from mediator.messages.base import Message
from mediator.messages.context import delivery_log_context, message_context
from mediator.messages.envelope import Envelope
from mediator.signals import delivery_deferred, delivery_retrying
from mediator.worker.countdown import broker_countdown
from mediator.worker.outcome import Outcome, Verdict, decide
from mediator.worker.slow_runs import slow_runs

logger = logging.getLogger("mediator.handler")


@dataclass(frozen=True)
class Attempt:
    """One try of one delivery, as Celery handed it over."""

    task: Task
    spec: HandlerSpec
    message: Any  # the task's argument, as received
    retries: int  # spent before this try

    @property
    def number(self) -> int:
        return self.retries + 1


def run_delivery(
    task: Task, spec: HandlerSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    kwargs = dict(kwargs)
    poisoned_retry = bool(kwargs.pop("poisoned_retry", False))
    attempt = Attempt(task, spec, args[0] if args else None, task.request.retries or 0)
    try:
        envelope, event = decode(spec, args, kwargs)
    except MessageError as exc:
        return carry_out(attempt, decide(spec, error=exc, decoded=False), exc)  # raises

    context = HandlerContext(
        spec=spec,
        message_id=envelope.event_id,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
        attempt=attempt.number,
        delivered=True,
    )
    with delivery_log_context(
        event_id=str(envelope.event_id),
        event_type=envelope.event_type,
        handler=spec.name,
        attempt=attempt.number,
        correlation_id=envelope.correlation_id or "-",
        causation_id=envelope.causation_id or "-",
    ):
        with message_context(
            correlation_id=envelope.correlation_id,
            causation_id=str(envelope.event_id),
            handling=envelope.event_id,
        ):
            with slow_runs.watching(envelope.event_id, spec.name, attempt.number):
                error = run(event, context)
            outcome = decide(
                spec, error=error, duplicate=context.duplicate, retries=attempt.retries
            )
            verdict = carry_out(attempt, outcome, error, envelope)
        if poisoned_retry:
            poison.mark_resolved(event_id=envelope.event_id, handler=spec.name)
        return verdict


def decode(
    spec: HandlerSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Envelope, Message]:
    """The envelope and its typed message, or a MessageError saying why not."""
    if len(args) != 1 or kwargs:
        raise UnknownHandler(
            f"{spec.name} takes one event envelope; got {len(args)} positional "
            f"argument(s) and keyword(s) {sorted(kwargs)}."
        )
    envelope = Envelope.from_message(args[0])
    event = envelope.event()
    if not isinstance(event, spec.event_types):
        raise UnknownHandler(f"{spec.name} does not handle {envelope.event_type}.")
    return envelope, event


def run(event: Message, context: HandlerContext) -> Exception | None:
    """The behaviours, then the handler in its inbox transaction; what it raised."""
    try:
        run_pipeline(event, context, exactly_once(context))
    except Exception as exc:
        return exc
    return None


def carry_out(
    attempt: Attempt,
    outcome: Outcome,
    error: Exception | None,
    envelope: Envelope | None = None,
) -> str:
    """Done and duplicate return their name (the task's result); the others
    raise what Celery needs: Retry for a retry or a deferral, HandlerPoisoned
    (after the row is written) for a poisoned delivery."""
    spec, number = attempt.spec, attempt.number
    if outcome.verdict in (Verdict.DONE, Verdict.DUPLICATE):
        return outcome.verdict.value
    # Only a run that raised is retried, deferred or poisoned.
    assert isinstance(error, Exception)
    if outcome.verdict is Verdict.DEFER:
        logger.info("%s deferred %.1fs: %s", spec.name, outcome.countdown, error)
        delivery_deferred.send(
            sender=HandlerSpec, handler=spec.name, countdown=outcome.countdown,
            reason=outcome.reason,
        )  # fmt: skip
        if envelope is not None:
            progress.record_retrying(envelope.event_id, spec.name, number, outcome.countdown, error)
        # Not a retry: the re-sent task keeps this retry count, so neither our
        # budget nor Celery's worker-lost limit is spent.
        attempt.task.request.retries = attempt.retries - 1
        _retry(attempt.task, error, countdown=outcome.countdown, max_retries=sys.maxsize)
    if outcome.verdict is Verdict.RETRY:
        logger.warning(
            "%s on %s %s (attempt %d) failed with %s; retrying in %.1fs",
            spec.name, envelope.event_type if envelope else "?",
            envelope.event_id if envelope else "?", number, outcome.reason, outcome.countdown,
        )  # fmt: skip
        delivery_retrying.send(
            sender=HandlerSpec, handler=spec.name, attempt=number,
            countdown=outcome.countdown, error=error,
        )  # fmt: skip
        if envelope is not None:
            progress.record_retrying(envelope.event_id, spec.name, number, outcome.countdown, error)
        _retry(attempt.task, error, countdown=outcome.countdown)
    _poison(attempt, error)
    if envelope is not None:
        logger.error("%s poisoned on attempt %d: %s", spec.name, number, outcome.reason)
    raise HandlerPoisoned(outcome.reason) from error


def _poison(attempt: Attempt, exc: Exception) -> None:
    try:
        poison.record(
            handler=attempt.spec.name,
            message=attempt.message,
            exception=exc,
            traceback_text="".join(traceback.format_exception(exc)),
            attempts=attempt.number,
            task_id=attempt.task.request.id or "",
        )
    except (OperationalError, InterfaceError) as db_exc:
        # The database is unreachable. No record, no ack: keep the message
        # alive until it is back (max_retries=None would mean "the task's
        # limit", already spent).
        _retry(attempt.task, db_exc, countdown=attempt.spec.backoff_max, max_retries=sys.maxsize)
    except Exception:
        # record() writes a row whatever the message holds; if even its
        # minimal row was refused, retrying cannot change that, and looping
        # every backoff_max would hide it. The task fails; its delivery is
        # neither done nor poisoned, so the reconciler sends it again after
        # REDELIVER_AFTER_SECONDS and the dashboard lists it as overdue.
        logger.exception("%s: the poisoned record could not be written at all", attempt.spec.name)


def _retry(task: Task, exc: Exception, *, countdown: float, **options: Any) -> NoReturn:
    try:
        raise task.retry(exc=exc, countdown=broker_countdown(countdown), **options)
    except Reject as no_retry:
        # Celery could not publish the retry (the broker is down) and would drop
        # the message. Put it back instead, after a short pause so a broker that
        # takes requeues but not publishes cannot spin us in a tight loop.
        reason = getattr(no_retry, "reason", no_retry)
        logger.warning("could not schedule a retry (%s); requeueing the delivery", reason)
        time.sleep(min(countdown, 1.0))
        raise Reject(reason, requeue=True) from exc
