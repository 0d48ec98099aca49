"""Correlation and causation ids of the work in progress, and the fields a
handler run's log lines carry.

A web request starts a correlation; every event published while handling it,
and every event a handler publishes in turn, carries the same correlation id
and names the event that caused it.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# What an id from outside (an X-Correlation-ID header, a task message) must look
# like to be passed on: no spaces or "=" that would forge key=value log fields,
# and no longer than the outbox and saga columns (64).
ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def valid_id(value: object) -> str | None:
    """The value if it is an id we may pass on (ID_PATTERN), else None."""
    return value if isinstance(value, str) and ID_PATTERN.fullmatch(value) else None


_correlation_id: ContextVar[str | None] = ContextVar("mediator_correlation_id", default=None)
_causation_id: ContextVar[str | None] = ContextVar("mediator_causation_id", default=None)
_handling: ContextVar[uuid.UUID | None] = ContextVar("mediator_handling", default=None)
_sent: ContextVar[Iterator[int] | None] = ContextVar("mediator_sent", default=None)


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def current_causation_id() -> str | None:
    return _causation_id.get()


def current_event_id() -> uuid.UUID:
    """The id of the event the running handler was given: the idempotency key
    for effects outside the database (an e-mail, a payment request)."""
    event_id = _handling.get()
    if event_id is None:
        raise LookupError("current_event_id() is only available inside a running handler.")
    return event_id


def command_id_for_send() -> uuid.UUID:
    """The id of a command about to be sent in-process: random, except inside
    a running handler, where its n-th send() gets the same id on every retry
    (a uuid5 of the message being handled), so that current_event_id() in the
    command's handler stays an idempotency key."""
    parent, counter = _handling.get(), _sent.get()
    if parent is None or counter is None:
        return uuid.uuid4()
    return uuid.uuid5(parent, f"send#{next(counter)}")


@contextmanager
def message_context(
    *, correlation_id: str | None, causation_id: str | None, handling: uuid.UUID | None = None
) -> Iterator[None]:
    tokens = (
        _correlation_id.set(valid_id(correlation_id)),
        _causation_id.set(valid_id(causation_id)),
        _handling.set(handling),
    )
    sent = _sent.set(itertools.count() if handling is not None else None)
    try:
        yield
    finally:
        _sent.reset(sent)
        _handling.reset(tokens[2])
        _causation_id.reset(tokens[1])
        _correlation_id.reset(tokens[0])


LOG_FIELDS = ("event_id", "event_type", "handler", "attempt", "correlation_id", "causation_id")

_run_log_fields: ContextVar[dict[str, Any] | None] = ContextVar(
    "mediator_log_context", default=None
)


@contextmanager
def delivery_log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside the block carries these fields
    (mediator.observability.logging.DeliveryContextFilter adds them)."""
    token = _run_log_fields.set({k: fields.get(k, "-") for k in LOG_FIELDS})
    try:
        yield
    finally:
        _run_log_fields.reset(token)


def current_log_fields() -> dict[str, Any] | None:
    return _run_log_fields.get()
