"""Behaviours that make handler runs visible: a log line and a span per run
(mediator.handlers.pipeline explains the chain; Prometheus figures are
mediator.observability.metrics.measure, with the 'prometheus' extra)."""

from __future__ import annotations

import logging
import time
from typing import Any

from mediator.exceptions import Deferred
from mediator.handlers.pipeline import CallNext, HandlerContext
from mediator.messages import trace_context
from mediator.messages.base import Message
from mediator.messages.context import delivery_log_context

logger = logging.getLogger("mediator.handler")


def log(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """One line per run, with its outcome and duration; every line logged
    during the run carries the message's ids (mediator.observability.logging)."""
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
    with trace_context.span(
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
