"""Which handlers subscribe to which events and commands, and `handles`.

Each handler becomes its own Celery task, named after the function
("shipping.handlers.cancel_shipment"), so routing, rate limits, retries and
Flower all work per handler.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from django.utils.module_loading import import_string

from mediator.conf import mediator_settings
from mediator.events import Message

if TYPE_CHECKING:
    from celery import Task

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class HandlerSpec:
    name: str
    func: Callable[[Any], Any]
    event_types: tuple[type[Message], ...]
    max_retries: int
    backoff: float
    backoff_max: float
    jitter: bool
    retry_on: tuple[type[BaseException], ...]
    poison_on: tuple[type[BaseException], ...]
    queue: str | None = None
    rate_limit: str | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None
    atomic: bool = True
    breaker: str | None = None  # the circuit breaker this handler's runs go through
    task: Task = field(init=False, repr=False)

    @property
    def is_command_handler(self) -> bool:
        return self.event_types[0].kind == "command"

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, self.poison_on):
            return False
        return isinstance(exc, self.retry_on)

    def countdown(self, retries_so_far: int) -> float:
        """Seconds before the next try: exponential, capped, with equal jitter."""
        delay = min(self.backoff_max, self.backoff * (2**retries_so_far))
        return random.uniform(delay / 2, delay) if self.jitter else delay


_handlers: dict[str, HandlerSpec] = {}
_by_event_type: dict[str, list[HandlerSpec]] = {}
_duplicate_names: list[str] = []


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
    from mediator.commands import Command
    from mediator.events import DomainEvent

    if not event_types or not all(
        isinstance(cls, type) and issubclass(cls, DomainEvent | Command) for cls in event_types
    ):
        raise TypeError("@handles takes one or more DomainEvent subclasses, or one Command.")
    if any(issubclass(cls, Command) for cls in event_types) and len(event_types) > 1:
        raise TypeError("A command handler handles exactly one Command class.")
    conf = mediator_settings()

    def register(func: F) -> F:
        from mediator.tasks import make_handler_task

        spec_name = name or f"{func.__module__}.{func.__name__}"
        spec = HandlerSpec(
            name=spec_name,
            func=func,
            event_types=event_types,
            max_retries=conf["MAX_RETRIES"] if max_retries is None else max_retries,
            backoff=float(conf["RETRY_BACKOFF_BASE"] if backoff is None else backoff),
            backoff_max=float(conf["RETRY_BACKOFF_MAX"] if backoff_max is None else backoff_max),
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
        if spec.name in _handlers and _handlers[spec.name].func is not func:
            _duplicate_names.append(spec.name)
        spec.task = make_handler_task(spec)
        _handlers[spec.name] = spec
        for event_type in event_types:
            subscribers = _by_event_type.setdefault(event_type.event_type, [])
            subscribers[:] = [s for s in subscribers if s.name != spec.name] + [spec]
        return func

    return register


def _default_retry_on() -> tuple[type[BaseException], ...]:
    return tuple(import_string(path) for path in mediator_settings()["RETRY_ON"])


def handlers_for(event_type: str) -> list[HandlerSpec]:
    return _by_event_type.get(event_type, [])


def get_handler(name: str) -> HandlerSpec | None:
    return _handlers.get(name)


def all_handlers() -> list[HandlerSpec]:
    return list(_handlers.values())


def duplicate_handler_names() -> list[str]:
    return list(_duplicate_names)
