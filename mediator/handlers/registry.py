"""Which handlers subscribe to which events and commands, and `handles`.

Each handler becomes its own Celery task, named after the function
("shipping.handlers.cancel_shipment"), so routing, rate limits, retries and
Flower all work per handler. The registry only records the handler; the
worker layer builds its task (mediator.worker.tasks), in the app's ready().
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.utils.module_loading import import_string

from mediator.conf import mediator_settings
from mediator.handlers.spec import HandlerSpec
from mediator.messages.base import Command, DomainEvent, Message
from mediator.signals import handler_registered

F = TypeVar("F", bound=Callable[..., Any])


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, HandlerSpec] = {}
        self._by_event_type: dict[str, list[HandlerSpec]] = {}
        self._duplicate_names: list[str] = []

    def register(self, spec: HandlerSpec) -> None:
        existing = self._handlers.get(spec.name)
        if existing is not None and existing.func is not spec.func:
            self._duplicate_names.append(spec.name)
        self._handlers[spec.name] = spec
        for event_type in spec.event_types:
            subscribers = self._by_event_type.setdefault(event_type.event_type, [])
            subscribers[:] = [s for s in subscribers if s.name != spec.name] + [spec]
        handler_registered.send(sender=type(self), spec=spec)

    def for_type(self, event_type: str) -> list[HandlerSpec]:
        return self._by_event_type.get(event_type, [])

    def get(self, name: str) -> HandlerSpec | None:
        return self._handlers.get(name)

    def all(self) -> list[HandlerSpec]:
        return list(self._handlers.values())

    def duplicate_names(self) -> list[str]:
        return list(self._duplicate_names)

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """Handlers registered inside the block are forgotten after it (tests)."""
        saved = (
            dict(self._handlers),
            {k: list(v) for k, v in self._by_event_type.items()},
            list(self._duplicate_names),
        )
        try:
            yield
        finally:
            self._handlers, self._by_event_type, self._duplicate_names = saved


handler_registry = HandlerRegistry()


def handlers_for(event_type: str) -> list[HandlerSpec]:
    return handler_registry.for_type(event_type)


def get_handler(name: str) -> HandlerSpec | None:
    return handler_registry.get(name)


def all_handlers() -> list[HandlerSpec]:
    return handler_registry.all()


def handles(
    *event_types: type[Message],
    name: str | None = None,
    max_retries: int | None = None,
    backoff: float | None = None,
    backoff_max: float | None = None,
    jitter: bool | None = None,
    retry_on: tuple[type[BaseException], ...] | None = None,
    poison_on: tuple[type[BaseException], ...] = (),
    queue: str | None = None,
    rate_limit: str | None = None,
    soft_time_limit: float | None = None,
    time_limit: float | None = None,
    atomic: bool = True,
    breaker: str | bool = False,
    registry: HandlerRegistry = handler_registry,
) -> Callable[[F], F]:
    """Subscribe a function `(event) -> None` to one or more event classes, or
    make it the handler `(command) -> result` of one command class.

    Options left out come from the MEDIATOR setting. `retry_on` lists the
    exceptions worth retrying (default: MEDIATOR["RETRY_ON"]); `poison_on`
    lists exceptions to poison at once even if they match `retry_on`.

    `atomic=False` is for handlers whose effect is outside the database (an
    SMTP hand-over, an HTTP call) and that keep their own "already done" mark:
    the handler runs outside a transaction, so a mark it commits survives a
    later failure, and its inbox record is written after it returns. That is
    at least once: the handler must be idempotent (current_event_id() is the key).

    `breaker=True` puts the handler behind its own circuit breaker (shared by
    every worker, in Redis); `breaker="smtp"` shares the breaker named after a
    downstream with every handler that names it. Thresholds: MEDIATOR["BREAKERS"].
    """
    if not event_types or not all(
        isinstance(cls, type) and issubclass(cls, DomainEvent | Command) for cls in event_types
    ):
        raise TypeError("@handles takes one or more DomainEvent subclasses, or one Command.")
    if any(issubclass(cls, Command) for cls in event_types) and len(event_types) > 1:
        raise TypeError("A command handler handles exactly one Command class.")
    conf = mediator_settings()

    def register(func: F) -> F:
        spec_name = name or f"{func.__module__}.{func.__name__}"
        registry.register(
            HandlerSpec(
                name=spec_name,
                func=func,
                event_types=event_types,
                max_retries=conf["MAX_RETRIES"] if max_retries is None else max_retries,
                backoff=float(conf["RETRY_BACKOFF_BASE"] if backoff is None else backoff),
                backoff_max=float(
                    conf["RETRY_BACKOFF_MAX"] if backoff_max is None else backoff_max
                ),
                jitter=conf["RETRY_JITTER"] if jitter is None else jitter,
                retry_on=retry_on if retry_on is not None else _default_retry_on(),
                poison_on=poison_on,
                queue=queue or conf["QUEUE"],
                rate_limit=rate_limit,
                soft_time_limit=soft_time_limit,
                time_limit=time_limit,
                atomic=atomic,
                breaker=(spec_name if breaker is True else breaker or None),
            )
        )
        return func

    return register


def _default_retry_on() -> tuple[type[BaseException], ...]:
    return tuple(import_string(path) for path in mediator_settings()["RETRY_ON"])
