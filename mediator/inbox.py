"""The inbox: "handler H has applied message M", written with H's effect.

A redelivered task finds its record and is skipped, so a handler's database
effect happens once however often the broker hands the task over.
"""

from __future__ import annotations

import uuid

from django.db import connection
from django.db.models import F
from django.utils import timezone

from mediator.models import InboxRecord


def claim(message_id: uuid.UUID, handler: str) -> bool:
    """INSERT the inbox record unless it exists, in one round trip.

    On PostgreSQL a concurrent duplicate blocks on the unique index until the
    first delivery's transaction ends, then sees its record (or claims it, if
    that one rolled back). SQLite serialises writers anyway.
    """
    meta = InboxRecord._meta
    prep = meta.get_field("event_id").get_db_prep_value(message_id, connection)
    handled_at = meta.get_field("handled_at").get_db_prep_value(timezone.now(), connection)
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(meta.db_table)} (event_id, handler, handled_at, duplicates) "
            "VALUES (%s, %s, %s, 0) ON CONFLICT (event_id, handler) DO NOTHING RETURNING id",
            [prep, handler, handled_at],
        )
        return cursor.fetchone() is not None


def is_done(message_id: uuid.UUID, handler: str) -> bool:
    return InboxRecord.objects.filter(event_id=message_id, handler=handler).exists()


def count_duplicate(message_id: uuid.UUID, handler: str) -> None:
    InboxRecord.objects.filter(event_id=message_id, handler=handler).update(
        duplicates=F("duplicates") + 1
    )
