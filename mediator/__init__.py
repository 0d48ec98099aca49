"""A durable mediator: publish domain events in a transaction, handle each in
its own Celery task, exactly once for database effects."""

from mediator.context import current_event_id
from mediator.events import DomainEvent
from mediator.exceptions import Deferred, PermanentError, RetryableError
from mediator.publishing import publish
from mediator.registry import handles

__all__ = [
    "Deferred",
    "DomainEvent",
    "PermanentError",
    "RetryableError",
    "current_event_id",
    "handles",
    "publish",
]
