"""The one mapping between an envelope, its outbox row and its wire message."""

from __future__ import annotations

import pytest

from mediator.delivery import mapping
from mediator.delivery.models import OutboxMessage
from mediator.messages.envelope import STORED_FIELDS, Envelope
from tests.testapp.events import Pinged


def test_every_envelope_field_is_an_outbox_column() -> None:
    columns = {field.name for field in OutboxMessage._meta.concrete_fields}
    assert set(STORED_FIELDS) <= columns
    assert set(mapping.COLUMNS) == {"id", *STORED_FIELDS}


@pytest.mark.django_db
def test_an_envelope_survives_the_row_and_the_wire_unchanged() -> None:
    envelope = Envelope.wrap(
        Pinged(key="k"), correlation_id="corr", causation_id="cause",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )  # fmt: skip
    row = mapping.row_for(envelope)
    row.save()
    loaded = OutboxMessage.objects.only(*mapping.COLUMNS).get(pk=row.pk)
    assert mapping.envelope_of(loaded) == envelope
    assert Envelope.from_message(mapping.wire_message(loaded)) == envelope
