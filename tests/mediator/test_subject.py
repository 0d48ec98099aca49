"""An event's `about` field is stored in an indexed column, and the history
of one thing (an order's timeline) is read through it, not a JSON scan."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from mediator import DomainEvent, publish
from mediator.exceptions import ImproperEvent
from mediator.messages.envelope import Envelope
from mediator.models import OutboxMessage
from mediator.observability.timeline import events_about
from tests.mediator.helpers import new_key
from tests.testapp.events import Pinged


@pytest.mark.django_db
def test_the_subject_is_stored_and_found_through_its_column() -> None:
    key, other = new_key(), new_key()
    with transaction.atomic():
        first = publish(Pinged(key=key))
        publish(Pinged(key=other))
        second = publish(Pinged(key=key, mode="bug"))
    assert OutboxMessage.objects.get(event_id=first).subject == f"key={key}"

    with CaptureQueriesContext(connection) as queries:
        found = events_about("key", key)
    assert [event.event_id for event in found] == [first, second]
    [outbox_query] = [q["sql"] for q in queries if 'FROM "mediator_outboxmessage"' in q["sql"]]
    assert '"subject" =' in outbox_query
    assert "payload" not in outbox_query.split("WHERE", 1)[1]


@pytest.mark.django_db
def test_an_order_timeline_is_bounded() -> None:
    key = new_key()
    with transaction.atomic():
        ids = [publish(Pinged(key=key)) for _ in range(5)]
    assert [event.event_id for event in events_about("key", key, limit=3)] == ids[2:]


@pytest.mark.django_db
def test_a_message_about_nothing_has_an_empty_subject(isolated_registry: None) -> None:
    class Unfiled(DomainEvent):
        event_type = "tests.Unfiled"
        note: str

    envelope = Envelope.wrap(Unfiled(note="x"), correlation_id=None, causation_id=None)
    assert envelope.subject == ""


def test_about_must_name_a_field(isolated_registry: None) -> None:
    with pytest.raises(TypeError, match=r"about = 'order' names none of its fields"):

        class Misfiled(DomainEvent):
            event_type = "tests.Misfiled"
            about = "order"
            order_id: int


def test_a_subject_is_an_id_not_a_document(isolated_registry: None) -> None:
    class Wordy(DomainEvent):
        event_type = "tests.Wordy"
        about = "text"
        text: str

    with pytest.raises(ImproperEvent, match=r"is about 'text', and its subject is 206 characters"):
        Envelope.wrap(Wordy(text="x" * 201), correlation_id=None, causation_id=None)


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_column_get_their_subject_from_the_migration() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("mediator", "0005_sagas")])
    old = executor.loader.project_state([("mediator", "0005_sagas")]).apps
    OldOutbox = old.get_model("mediator", "OutboxMessage")
    row = Envelope.wrap(Pinged(key="before"), correlation_id=None, causation_id=None).stored()
    row.pop("subject")
    OldOutbox.objects.create(**row)
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert OutboxMessage.objects.get(event_id=row["event_id"]).subject == "key=before"
