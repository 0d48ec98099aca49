"""`publish(event)`: write the event to the outbox in the caller's transaction
and send it right after that transaction commits."""

from __future__ import annotations

import uuid

from django.db import connection, transaction

from mediator.context import current_causation_id, current_correlation_id
from mediator.events import DomainEvent, Envelope
from mediator.exceptions import PublishOutsideTransaction


def publish(event: DomainEvent) -> uuid.UUID:
    """Publish a domain event; returns its event id.

    Must be called inside `transaction.atomic()`: the event is part of the
    change it describes, so it commits or rolls back with it. A rolled-back
    transaction publishes nothing; a committed one is dispatched right after
    commit, or by the relay if the broker is down then.
    """
    from mediator.dispatch import dispatch_after_commit
    from mediator.models import OutboxMessage
    from mediator.outbox_sql import insert_row

    if not connection.in_atomic_block:
        raise PublishOutsideTransaction(
            f"publish({type(event).__name__}) was called outside a transaction. Wrap the "
            "change and the publish in `with transaction.atomic():` so the event commits "
            "or rolls back with the change it describes."
        )
    envelope = Envelope.wrap(
        event, correlation_id=current_correlation_id(), causation_id=current_causation_id()
    )
    row_id = insert_row(OutboxMessage.from_envelope(envelope))
    message = envelope.to_message()
    transaction.on_commit(lambda: dispatch_after_commit(row_id, message))
    return envelope.event_id
