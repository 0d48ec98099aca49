import uuid
from decimal import Decimal

import pytest

from mediator.exceptions import ImproperEvent, InvalidPayload, MalformedMessage, UnknownEventType
from mediator.messages.base import message_types
from mediator.messages.envelope import Envelope
from ordering.events import OrderCancelled, OrderPlaced
from tests.testapp.events import Pinged


def placed() -> OrderPlaced:
    return OrderPlaced(
        order_id=7, customer_id=3, customer_email="a@example.com", total=Decimal("9.50")
    )


def test_events_are_immutable_with_stable_type_names() -> None:
    event = placed()
    with pytest.raises(Exception, match="frozen"):
        event.order_id = 8
    assert OrderPlaced.event_type == "ordering.OrderPlaced"
    assert OrderCancelled.version == 1
    assert message_types.get("ordering.OrderPlaced") is OrderPlaced


def test_envelope_round_trips_through_json_message() -> None:
    envelope = Envelope.wrap(placed(), correlation_id="corr-1", causation_id=None)
    message = envelope.to_message()
    assert message["payload"] == {
        "order_id": 7, "customer_id": 3, "customer_email": "a@example.com", "total": "9.50",
    }  # fmt: skip
    again = Envelope.from_message(message)
    assert again.event_id == envelope.event_id
    assert again.correlation_id == "corr-1"
    assert again.event() == placed()


def test_correlation_defaults_to_the_event_id() -> None:
    envelope = Envelope.wrap(placed(), correlation_id=None, causation_id=None)
    assert envelope.correlation_id == str(envelope.event_id)


def test_publishing_something_else_than_an_event_is_refused() -> None:
    with pytest.raises(ImproperEvent, match="Expected a DomainEvent or Command subclass, not dict"):
        Envelope.wrap({"order_id": 1}, correlation_id=None, causation_id=None)  # type: ignore[arg-type]


def message(**changes: object) -> dict:
    base = Envelope.wrap(Pinged(key="k"), correlation_id=None, causation_id=None).to_message()
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("bad", "error", "text"),
    [
        ("not a dict", MalformedMessage, "Expected an event envelope"),
        ({"event_type": "x"}, MalformedMessage, "lacks event_id"),
        (message(event_id="nope"), MalformedMessage, "bad id or time"),
        (message(event_type="testapp.Nope"), UnknownEventType, "Unknown event type 'testapp.Nope'"),
        (
            message(payload={"key": "k", "colour": "red"}),
            InvalidPayload,
            "Extra inputs are not permitted",
        ),
        (message(payload={"key": 5}), InvalidPayload, "Input should be a valid string"),
        (message(version=2), InvalidPayload, "version 2 cannot be read"),
    ],
)
def test_bad_messages_are_rejected_with_a_clear_error(bad: object, error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        Envelope.from_message(bad).event()


def test_envelope_ids_are_unique() -> None:
    ids = {
        Envelope.wrap(placed(), correlation_id=None, causation_id=None).event_id for _ in range(50)
    }
    assert len(ids) == 50
    assert all(isinstance(i, uuid.UUID) for i in ids)
