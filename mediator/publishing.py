"""`publish(event)`: write the event to the outbox in the caller's transaction
and send it right after that transaction commits."""

from __future__ import annotations

import uuid

from django.db import connection, transaction

from mediator.context import current_causation_id, current_correlation_id
from mediator.events import DomainEvent, Envelope, Message
from mediator.exceptions import ImproperEvent, PublishOutsideTransaction


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


def write_to_outbox(message: Message, verb: str) -> uuid.UUID:
    """The durable path shared by publish() and send_after_commit(): an outbox
    row in the caller's transaction, dispatched right after it commits."""
    from mediator.dispatch import dispatch_after_commit
    from mediator.models import OutboxMessage
    from mediator.outbox_sql import insert_row
    from mediator.tracing import current_traceparent, span

    if not connection.in_atomic_block:
        raise PublishOutsideTransaction(
            f"{verb}({type(message).__name__}) was called outside a transaction. Wrap the "
            f"change and the {verb} in `with transaction.atomic():` so the {message.kind} "
            "commits or rolls back with the change it belongs to."
        )
    with span(f"{verb} {type(message).event_type}", **{"mediator.kind": message.kind}):
        envelope = Envelope.wrap(
            message,
            correlation_id=current_correlation_id(),
            causation_id=current_causation_id(),
            traceparent=current_traceparent(),
        )
        row_id = insert_row(OutboxMessage.from_envelope(envelope))
    wire = envelope.to_message()
    transaction.on_commit(lambda: dispatch_after_commit(row_id, wire))
    return envelope.event_id
