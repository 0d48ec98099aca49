"""Pipeline behaviours: the middleware every handler run goes through.

A behaviour is a function `(message, context, call_next) -> result`. It may
act before and after `call_next()`, change nothing, or not call it at all.
MEDIATOR["BEHAVIOURS"] lists them outermost first; the same chain wraps a
handler run in a Celery task and an in-process `send()`. An exception from a
behaviour is treated like one from the handler: retried, or poisoned.

Inside the chain, around the handler itself, runs the delivery core's
`innermost` step: for a delivered message the inbox transaction (the
handler's effect and its inbox record commit together), for send() a
savepoint. It is not a behaviour: settings cannot remove or reorder it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from mediator.conf import mediator_settings
from mediator.handlers.spec import HandlerSpec
from mediator.messages.base import Message


@dataclass
class HandlerContext:
    """What a behaviour knows about the run it wraps."""

    spec: HandlerSpec
    message_id: uuid.UUID  # the event id (or command id): the idempotency key
    correlation_id: str
    causation_id: str
    attempt: int  # 1 for the first try
    delivered: bool  # True in a Celery task, False in send()
    duplicate: bool = False  # set by the inbox step: the inbox says done

    @property
    def handler(self) -> str:
        return self.spec.name


CallNext = Callable[[], Any]
Innermost = Callable[[CallNext], Any]


class Behaviour(Protocol):
    def __call__(self, message: Message, context: HandlerContext, call_next: CallNext) -> Any: ...


# Before 0.2 the inbox transaction was a behaviour in this list.
REMOVED_BEHAVIOURS = {"mediator.behaviours.transaction"}


@cache
def behaviours() -> tuple[Behaviour, ...]:
    chain = []
    for path in mediator_settings()["BEHAVIOURS"]:
        if path in REMOVED_BEHAVIOURS:
            raise ImproperlyConfigured(
                f"MEDIATOR['BEHAVIOURS'] names {path!r}: the inbox transaction is part of "
                "delivery now, always innermost; remove it from the list."
            )
        try:
            behaviour = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"MEDIATOR['BEHAVIOURS'] names {path!r}: {exc}") from None
        if not callable(behaviour):
            raise ImproperlyConfigured(f"MEDIATOR['BEHAVIOURS'] entry {path!r} is not callable.")
        chain.append(behaviour)
    return tuple(chain)


_current: ContextVar[HandlerContext | None] = ContextVar("mediator_handler_context", default=None)


def current_handler_context() -> HandlerContext:
    """The context of the handler run in progress (for code that needs its
    attempt or its spec, such as the saga step runner)."""
    context = _current.get()
    if context is None:
        raise LookupError("current_handler_context() is only available inside a handler run.")
    return context


def run_pipeline(message: Message, context: HandlerContext, innermost: Innermost) -> Any:
    """The behaviours, outermost first, then `innermost(call_handler)`."""
    chain = behaviours()
    handler = context.spec.func

    def call_handler() -> Any:
        return handler(message)

    def step(index: int) -> Any:
        if index == len(chain):
            return innermost(call_handler)
        return chain[index](message, context, lambda: step(index + 1))

    token = _current.set(context)
    try:
        return step(0)
    finally:
        _current.reset(token)


def reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """setting_changed receiver (connected in ready())."""
    if setting == "MEDIATOR":
        behaviours.cache_clear()
