"""A durable mediator: publish domain events in a transaction, handle each in
its own Celery task, exactly once for database effects; send commands to
their one handler, now or after commit.

The package is layered; each layer imports only the layers below it, and
news travels up by signals (mediator.signals). `make lint` holds the layers
to this order with import-linter (pyproject.toml, [tool.importlinter]):

    ops | testing  admin, dashboard, views, middleware, system checks
                   (and the app shell: apps, wiring, admin, urls, models, management) |
                   the pytest plugin and its helpers, which nothing else imports
    observability | retention
                   metrics, tracing setup, log filter, timeline, selectors, graph |
                   pruning what is finished
    sagas | resilience | tasks_backend
                   saga declarations and runner | circuit breakers |
                   django-tasks' backend (needs the `tasks` extra)
    worker | recovery
                   the Celery task, the outcome decision, the consumer |
                   relay, reconciler, the periodic sweep
    delivery       publish, send, outbox, mapping, dispatch, inbox, progress, poison
    handlers       handler specs, the registry and `handles`, the pipeline
    messages       event and command classes, their types, envelope, context
    conf, exceptions, signals, extras (the optional dependencies)

Importing this package needs no app registry: the names below are loaded on
first use (PEP 562).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mediator.delivery.publish import publish
    from mediator.delivery.send import send, send_after_commit
    from mediator.exceptions import CircuitOpen, Deferred, PermanentError, RetryableError
    from mediator.handlers.pipeline import CallNext, HandlerContext
    from mediator.handlers.registry import handles
    from mediator.messages.base import Command, DomainEvent
    from mediator.messages.context import current_event_id
    from mediator.sagas.definition import Saga, Step, start_saga

__version__ = "0.2.0"  # the one place; CHANGELOG.md says what each version changed

_PUBLIC = {
    "CallNext": "mediator.handlers.pipeline",
    "CircuitOpen": "mediator.exceptions",
    "Command": "mediator.messages.base",
    "Deferred": "mediator.exceptions",
    "DomainEvent": "mediator.messages.base",
    "HandlerContext": "mediator.handlers.pipeline",
    "PermanentError": "mediator.exceptions",
    "RetryableError": "mediator.exceptions",
    "Saga": "mediator.sagas.definition",
    "Step": "mediator.sagas.definition",
    "current_event_id": "mediator.messages.context",
    "handles": "mediator.handlers.registry",
    "publish": "mediator.delivery.publish",
    "send": "mediator.delivery.send",
    "send_after_commit": "mediator.delivery.send",
    "start_saga": "mediator.sagas.definition",
}

__all__ = [
    "CallNext",
    "CircuitOpen",
    "Command",
    "Deferred",
    "DomainEvent",
    "HandlerContext",
    "PermanentError",
    "RetryableError",
    "Saga",
    "Step",
    "current_event_id",
    "handles",
    "publish",
    "send",
    "send_after_commit",
    "start_saga",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'mediator' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
