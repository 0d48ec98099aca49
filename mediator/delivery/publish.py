"""`publish(event)`: write the event to the outbox in the caller's transaction
and send it right after that transaction commits."""

from __future__ import annotations

import uuid

from mediator.delivery.outbox import write_to_outbox
from mediator.exceptions import ImproperEvent
from mediator.messages.base import DomainEvent, Message


def publish(event: DomainEvent) -> uuid.UUID:
    """Publish a domain event; returns its event id.

    Must be called inside `transaction.atomic()`: the event is part of the
    change it describes, so it commits or rolls back with it. A rolled-back
    transaction publishes nothing; a committed one is dispatched right after
    commit, or by the relay if the broker is down then.
    """
    if not isinstance(event, DomainEvent):
        if isinstance(event, Message):
            raise ImproperEvent(
                f"publish() takes a DomainEvent; {type(event).__name__} is a {event.kind}: "
                "use send() to run it now or send_after_commit() to run it in a task."
            )
        raise ImproperEvent(f"publish() takes a DomainEvent, not {type(event).__name__}.")
    return write_to_outbox(event, "publish")
