"""The behaviours the mediator ships (mediator.pipeline explains the chain).

Default order, outermost first: log, trace, measure, circuit_breaker,
validate, transaction. The transaction behaviour must stay innermost: it puts
the handler and its inbox record in one transaction.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pydantic
from django.db import transaction as db_transaction

from mediator import inbox, metrics, tracing
from mediator.events import Message, check_payload_size
from mediator.exceptions import Deferred, InvalidPayload
from mediator.logging import delivery_log_context
from mediator.pipeline import CallNext, HandlerContext

logger = logging.getLogger("mediator.handler")


def log(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """One line per run, with its outcome and duration; every line logged
    during the run carries the message's ids (mediator.logging)."""
    started = time.perf_counter()
    with delivery_log_context(
        event_id=str(context.message_id),
        event_type=message.event_type,
        handler=context.handler,
        attempt=context.attempt,
        correlation_id=context.correlation_id,
        causation_id=context.causation_id or "-",
    ):
        try:
            result = call_next()
        except Exception as exc:
            outcome = "deferred" if isinstance(exc, Deferred) else "failed"
            logger.info(
                "%s %s %s: %s in %.1f ms (%s)", context.handler, message.event_type,
                context.message_id, outcome, _ms(started), type(exc).__name__,
            )  # fmt: skip
            raise
        outcome = "duplicate, skipped" if context.duplicate else "done"
        logger.info(
            "%s %s %s: %s in %.1f ms", context.handler, message.event_type,
            context.message_id, outcome, _ms(started),
        )  # fmt: skip
        return result


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def trace(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """An OpenTelemetry span per run (nothing when tracing is off)."""
    with tracing.span(
        f"handle {context.handler}",
        **{  # type: ignore[arg-type]
            "mediator.handler": context.handler,
            "mediator.message_type": message.event_type,
            "mediator.message_id": str(context.message_id),
            "mediator.correlation_id": context.correlation_id,
            "mediator.causation_id": context.causation_id,
            "mediator.attempt": context.attempt,
        },
    ):
        return call_next()


def measure(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """Prometheus: runs by outcome, and their duration (mediator.metrics)."""
    started = time.perf_counter()
    try:
        result = call_next()
    except Deferred:
        metrics.HANDLER_RUNS.labels(context.handler, "deferred").inc()
        raise  # not run: no duration
    except Exception:
        metrics.HANDLER_RUNS.labels(context.handler, "failed").inc()
        metrics.HANDLER_SECONDS.labels(context.handler).observe(time.perf_counter() - started)
        raise
    metrics.HANDLER_SECONDS.labels(context.handler).observe(time.perf_counter() - started)
    metrics.HANDLER_RUNS.labels(context.handler, "duplicate" if context.duplicate else "done").inc()
    return result


def circuit_breaker(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """For handlers declared with `breaker=`: while the breaker is open, raise
    CircuitOpen (a task is deferred, not retried; send() gets the error)."""
    name = context.spec.breaker
    if name is None:
        return call_next()
    if context.delivered and inbox.is_done(context.message_id, context.handler):
        return call_next()  # a redelivery the inbox will skip: no call, no waiting
    from mediator.breaker import Breaker

    breaker = Breaker(name)
    ticket = breaker.before_call()
    try:
        result = call_next()
    except Exception as exc:
        if context.spec.should_retry(exc) and not isinstance(exc, Deferred):
            breaker.record_failure(ticket)
        else:  # a bug or a refusal says nothing about the downstream's health
            breaker.release(ticket)
        raise
    if context.duplicate:  # raced with another delivery: the downstream was not called
        breaker.release(ticket)
    else:
        breaker.record_success(ticket)
    return result


def validate(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """Hold the message to its class's schema (strict, as on the wire) and the
    payload size limit; a failure is InvalidPayload, poisoned, never retried.

    A delivery was decoded with exactly this check before the chain ran, so
    this matters for send(): a message built with model_construct(), or
    changed after it was built, does not reach the handler unchecked.
    """
    if not context.delivered:
        raw = json.dumps(message.model_dump(mode="json", warnings=False))
        check_payload_size(message.event_type, len(raw))
        try:
            type(message).model_validate_json(raw, strict=True)
        except pydantic.ValidationError as exc:
            raise InvalidPayload(f"{message.event_type} payload is invalid: {exc}") from None
    return call_next()


def transaction(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """The handler and its inbox record in one database transaction: a
    redelivered task finds the record and is skipped. In send(), a savepoint
    in the caller's transaction (no inbox: it runs once, in the caller)."""
    spec = context.spec
    if not context.delivered:
        with db_transaction.atomic():
            return call_next()
    if not spec.atomic:
        return _at_least_once(context, call_next)
    with db_transaction.atomic():
        if not inbox.claim(context.message_id, spec.name):
            inbox.count_duplicate(context.message_id, spec.name)
            context.duplicate = True
            return None
        return call_next()


def _at_least_once(context: HandlerContext, call_next: CallNext) -> Any:
    """A handler declared atomic=False: skip it if recorded done, else run it
    outside a transaction (its own marks survive a later failure), then record it."""
    if inbox.is_done(context.message_id, context.handler):
        inbox.count_duplicate(context.message_id, context.handler)
        context.duplicate = True
        return None
    result = call_next()
    with db_transaction.atomic():
        inbox.claim(context.message_id, context.handler)
    return result
