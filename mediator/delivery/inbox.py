"""The inbox: "handler H has applied message M", written with H's effect.

A redelivered task finds its record and is skipped, so a handler's database
effect happens once however often the broker hands the task over. The
transaction that holds both is the delivery core's innermost step
(`exactly_once`), run by every delivery inside the behaviours: no setting
can remove it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from mediator.delivery.models import InboxRecord
from mediator.handlers.pipeline import CallNext, HandlerContext, Innermost


def exactly_once(context: HandlerContext) -> Innermost:
    """The innermost step of a delivered run: the handler and its inbox record
    in one database transaction; a delivery the inbox has seen is skipped
    (context.duplicate). A handler declared atomic=False runs outside a
    transaction, then gets its record: at least once."""

    def run(call_handler: CallNext) -> Any:
        message_id, handler = context.message_id, context.handler
        if not context.spec.atomic:
            if is_done(message_id, handler):
                count_duplicate(message_id, handler)
                context.duplicate = True
                return None
            result = call_handler()  # its own marks survive a later failure
            with transaction.atomic():
                claim(message_id, handler)
            return result
        with transaction.atomic():
            if not claim(message_id, handler):
                count_duplicate(message_id, handler)
                context.duplicate = True
                return None
            return call_handler()

    return run


def in_savepoint(call_handler: Callable[[], Any]) -> Any:
    """The innermost step of send(): a savepoint in the caller's transaction
    (no inbox: the command runs once, in the caller)."""
    with transaction.atomic():
        return call_handler()


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
