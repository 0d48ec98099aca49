"""The one mapping between an envelope and its outbox row.

The row's columns are named after the envelope's fields
(mediator.messages.envelope.STORED_FIELDS), so this module never lists them:
publish, the relay, the reconciler and the poisoned-task retry all go
through it, and a field added to the envelope is stored, loaded and sent
everywhere at once (tests/mediator/test_mapping.py holds the row to it).
"""

from __future__ import annotations

from typing import Any

from mediator.delivery.models import OutboxMessage
from mediator.messages.envelope import STORED_FIELDS, Envelope

# What a query must load to rebuild the envelope (QuerySet.only(*COLUMNS)).
COLUMNS: tuple[str, ...] = ("id", *STORED_FIELDS)


def row_for(envelope: Envelope) -> OutboxMessage:
    """An unsaved outbox row holding the envelope."""
    return OutboxMessage(**envelope.stored())


def envelope_of(row: OutboxMessage) -> Envelope:
    return Envelope(**{name: getattr(row, name) for name in STORED_FIELDS})


def wire_message(row: OutboxMessage) -> dict[str, Any]:
    """What the row's tasks carry as their one argument."""
    return envelope_of(row).to_message()
