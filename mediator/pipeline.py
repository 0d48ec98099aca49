"""Pipeline behaviours: the middleware every handler run goes through.

A behaviour is a function `(message, context, call_next) -> result`. It may
act before and after `call_next()`, change nothing, or not call it at all.
MEDIATOR["BEHAVIOURS"] lists them outermost first; the same chain wraps a
handler run in a Celery task and an in-process `send()`. An exception from a
behaviour is treated like one from the handler: retried, or poisoned.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from mediator.conf import mediator_settings

if TYPE_CHECKING:
    from mediator.events import Message
    from mediator.registry import HandlerSpec


@dataclass
class HandlerContext:
    """What a behaviour knows about the run it wraps."""

    spec: HandlerSpec
    message_id: uuid.UUID  # the event id (or command id): the idempotency key
    correlation_id: str
    causation_id: str
    attempt: int  # 1 for the first try
    delivered: bool  # True in a Celery task, False in send()
    duplicate: bool = False  # set by the transaction behaviour: the inbox says done

    @property
    def handler(self) -> str:
        return self.spec.name


CallNext = Callable[[], Any]


class Behaviour(Protocol):
    def __call__(self, message: Message, context: HandlerContext, call_next: CallNext) -> Any: ...


@cache
def behaviours() -> tuple[Behaviour, ...]:
    chain = []
    for path in mediator_settings()["BEHAVIOURS"]:
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


def run_pipeline(message: Message, context: HandlerContext) -> Any:
    chain = behaviours()
    handler = context.spec.func

    def step(index: int) -> Any:
        if index == len(chain):
            return handler(message)
        return chain[index](message, context, lambda: step(index + 1))

    token = _current.set(context)
    try:
        return step(0)
    finally:
        _current.reset(token)


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "MEDIATOR":
        behaviours.cache_clear()
