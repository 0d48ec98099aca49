"""The outbox: a message written in the caller's transaction, sent after commit.

The two statements every publishing request runs are written in SQL: they
run once per published event, inside the caller's request, and building
them through the ORM (model save, queryset with F() and IN) cost more than
the database work itself (docs/benchmarks.md: publishing went from 1.61 to 1.27
times raw Celery's cost on SQLite). Everything else goes through the ORM.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import connection, transaction

from mediator.delivery.dispatch import dispatch_after_commit
from mediator.delivery.mapping import row_for
from mediator.delivery.models import OutboxMessage
from mediator.exceptions import PublishOutsideTransaction
from mediator.messages.base import Message
from mediator.messages.context import current_causation_id, current_correlation_id
from mediator.messages.envelope import Envelope
from mediator.messages.trace_context import current_traceparent, span


def write_to_outbox(
    message: Message, verb: str, *, not_before: datetime | None = None
) -> uuid.UUID:
    """The durable path shared by publish(), send_after_commit(), sagas and
    the tasks backend: an outbox row in the caller's transaction, dispatched
    right after it commits (or by the relay, if the broker is down then).

    `not_before` (a task's run_after) holds the row back: it is not sent after
    commit, and its `created_at` is that time, so the relay, which sends rows
    pending since before its grace period, leaves it alone until then. No
    countdown lives in the broker, and the reconciler, which looks only at
    dispatched rows, never sends it early.
    """
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
        row = row_for(envelope)
        if not_before is not None:
            row.created_at = not_before
        row_id = insert_row(row)
    if not_before is not None:
        return envelope.event_id
    wire = envelope.to_message()
    transaction.on_commit(lambda: dispatch_after_commit(row_id, wire))
    return envelope.event_id


def insert_row(row: OutboxMessage) -> int:
    """INSERT the unsaved row in the current transaction; returns its id."""
    meta = OutboxMessage._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(row, add=True), connection) for f in fields]
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            cursor.execute(f"{sql} RETURNING {connection.ops.quote_name(meta.pk.column)}", values)
            row_id = int(cursor.fetchone()[0])
        else:
            cursor.execute(sql, values)
            row_id = int(cursor.lastrowid)
    row.pk = row_id
    row._state.adding = False
    return row_id
