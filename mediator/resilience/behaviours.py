"""The circuit breaker behaviour (mediator.handlers.pipeline explains the chain)."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError

from mediator.delivery import inbox
from mediator.exceptions import Deferred
from mediator.handlers.pipeline import CallNext, HandlerContext
from mediator.messages.base import Message
from mediator.resilience.breaker import Breaker


def circuit_breaker(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """For handlers declared with `breaker=`: while the breaker is open, raise
    CircuitOpen (a task is deferred, not retried; send() gets the error)."""
    name = context.spec.breaker
    if name is None:
        return call_next()
    if context.delivered and inbox.is_done(context.message_id, context.handler):
        return call_next()  # a redelivery the inbox will skip: no call, no waiting
    breaker = Breaker(name)
    ticket = breaker.before_call()
    try:
        result = call_next()
    except Exception as exc:
        if context.spec.should_retry(exc) and not isinstance(exc, Deferred | DatabaseError):
            breaker.record_failure(ticket)
        else:
            # A bug, a refusal or our own database (restarted, say) says
            # nothing about the downstream's health.
            breaker.release(ticket)
        raise
    if context.duplicate:  # raced with another delivery: the downstream was not called
        breaker.release(ticket)
    else:
        breaker.record_success(ticket)
    return result
