"""The two outbox statements every publishing request runs, in SQL.

They run once per published event, inside the caller's request: building
them through the ORM (model save, queryset with F() and IN) cost more than
the database work itself (BENCHMARKS.md: publishing went from 1.61 to 1.27
times raw Celery's cost on SQLite). Everything else goes through the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connection

from mediator.models import OutboxMessage, OutboxStatus


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


def mark_dispatched(ids: Sequence[int], handlers: Sequence[str], now: datetime) -> None:
    """Mark the rows whose tasks are all with the broker; rows no longer
    pending (a relay got there first) are left as they are."""
    meta = OutboxMessage._meta
    params = [
        OutboxStatus.DISPATCHED.value,
        meta.get_field("dispatched_at").get_db_prep_save(now, connection),
        meta.get_field("handlers").get_db_prep_save(list(handlers), connection),
        OutboxStatus.PENDING.value,
        *ids,
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {connection.ops.quote_name(meta.db_table)} SET status = %s, "
            "dispatched_at = %s, handlers = %s, dispatch_attempts = dispatch_attempts + 1, "
            f"last_error = '' WHERE status = %s AND id IN ({', '.join(['%s'] * len(ids))})",
            params,
        )
