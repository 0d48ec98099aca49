"""A durable mediator: publish domain events in a transaction, handle each in
its own Celery task, exactly once for database effects; send commands to
their one handler, now or after commit."""

from mediator.commands import Command, send, send_after_commit
from mediator.context import current_event_id
from mediator.events import DomainEvent
from mediator.exceptions import CircuitOpen, Deferred, PermanentError, RetryableError
from mediator.pipeline import CallNext, HandlerContext
from mediator.publishing import publish
from mediator.registry import handles
from mediator.sagas import Saga, Step, start_saga

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
