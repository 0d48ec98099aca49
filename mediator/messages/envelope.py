"""The envelope a message travels in, and its one mapping to the wire.

On the wire a message is JSON: an envelope whose `payload` is validated
against the message's class when it arrives, so a wrong type or an unknown
field is a clear error, never a half-read message. The outbox row stores the
same fields under the same names (mediator.delivery.mapping), so the field
list below is the only place they are written out.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import pydantic
from django.utils import timezone

from mediator.conf import mediator_settings
from mediator.exceptions import ImproperEvent, InvalidPayload, MalformedMessage
from mediator.messages.base import Command, DomainEvent, Message, message_types
from mediator.messages.context import valid_id


def check_payload_size(event_type: str, size: int) -> None:
    limit = int(mediator_settings()["MAX_PAYLOAD_BYTES"])
    if size > limit:
        raise InvalidPayload(
            f"{event_type} payload is {size} bytes, over the {limit}-byte limit "
            "(MEDIATOR['MAX_PAYLOAD_BYTES']): carry ids, not documents."
        )


SUBJECT_MAX_LENGTH = 200


def subject_key(field_name: str, value: Any) -> str:
    """What the outbox's `subject` column holds for a message about `value`
    (`order_id=42`): publish and events_about() both spell it this way."""
    shown = value if isinstance(value, str) else json.dumps(value)
    return f"{field_name}={shown}"


def subject_of(event: Message, payload: dict[str, Any]) -> str:
    name = type(event).about
    if not name:
        return ""
    key = subject_key(name, payload[name])
    if len(key) > SUBJECT_MAX_LENGTH:
        raise ImproperEvent(
            f"{type(event).event_type} is about {name!r}, and its subject is {len(key)} "
            f"characters long (over {SUBJECT_MAX_LENGTH}): `about` should name an id."
        )
    return key


@dataclass(frozen=True)
class Envelope:
    event_id: uuid.UUID
    event_type: str
    version: int
    occurred_at: datetime
    payload: dict[str, Any]
    correlation_id: str = ""
    causation_id: str = ""
    # W3C trace context of the publisher (OpenTelemetry), so a task sent later by
    # the relay still joins the request's trace. Optional on the wire.
    traceparent: str = ""
    # What the message is about ("order_id=42"), for the indexed history of one
    # thing; empty when its class names no subject. Optional on the wire.
    subject: str = ""
    # Keys a newer publisher added that this code does not know: kept, not sent.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def wrap(
        cls,
        event: Message,
        *,
        correlation_id: str | None,
        causation_id: str | None,
        traceparent: str = "",
    ) -> Envelope:
        if not isinstance(event, Message) or type(event) in (Message, DomainEvent, Command):
            raise ImproperEvent(
                f"Expected a DomainEvent or Command subclass, not {type(event).__name__}."
            )
        payload = event.payload()
        try:
            check_payload_size(type(event).event_type, len(json.dumps(payload)))
        except InvalidPayload as exc:
            raise ImproperEvent(str(exc)) from None
        event_id = uuid.uuid4()
        return cls(
            event_id=event_id,
            event_type=type(event).event_type,
            version=type(event).version,
            occurred_at=timezone.now(),
            payload=payload,
            correlation_id=valid_id(correlation_id) or str(event_id),
            causation_id=valid_id(causation_id) or "",
            traceparent=traceparent,
            subject=subject_of(event, payload),
        )

    def to_message(self) -> dict[str, Any]:
        return {name: _encode(getattr(self, name)) for name in STORED_FIELDS}

    @classmethod
    def from_message(cls, message: Any) -> Envelope:
        if not isinstance(message, dict):
            raise MalformedMessage(
                f"Expected an event envelope (a JSON object), got {type(message).__name__}: "
                f"{str(message)[:200]}"
            )
        missing = [name for name in REQUIRED_ON_WIRE if name not in message]
        if missing:
            raise MalformedMessage(f"Event envelope lacks {', '.join(missing)}.")
        try:
            event_id = uuid.UUID(str(message["event_id"]))
            occurred_at = datetime.fromisoformat(str(message["occurred_at"]))
        except ValueError as exc:
            raise MalformedMessage(f"Event envelope has a bad id or time: {exc}") from None
        if not isinstance(message["payload"], dict) or not isinstance(message["version"], int):
            raise MalformedMessage("Event envelope's payload must be an object, version an int.")
        return cls(
            event_id=event_id,
            event_type=str(message["event_type"]),
            version=message["version"],
            occurred_at=occurred_at,
            payload=message["payload"],
            # From outside: an id that is not a plain one (log-field forgery, or
            # longer than the columns it is copied into) becomes this message's own.
            correlation_id=valid_id(message["correlation_id"]) or str(event_id),
            causation_id=valid_id(message["causation_id"]) or "",
            traceparent=str(message.get("traceparent") or "")[:64],
            subject=str(message.get("subject") or "")[:SUBJECT_MAX_LENGTH],
            extra={k: v for k, v in message.items() if k not in STORED_FIELDS},
        )

    def stored(self) -> dict[str, Any]:
        """The envelope's fields by name, as an outbox row stores them."""
        return {name: getattr(self, name) for name in STORED_FIELDS}

    def event(self) -> Message:
        """The typed event, or UnknownEventType / InvalidPayload saying why not."""
        cls = message_types.get(self.event_type)
        if self.version != cls.version:
            raise InvalidPayload(
                f"{self.event_type} version {self.version} cannot be read: "
                f"this code knows version {cls.version}."
            )
        raw = json.dumps(self.payload)
        check_payload_size(self.event_type, len(raw))
        try:
            return cls.model_validate_json(raw, strict=True)
        except pydantic.ValidationError as exc:
            raise InvalidPayload(f"{self.event_type} payload is invalid: {exc}") from None


# Every field but `extra`: what the wire message and the outbox row hold.
STORED_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Envelope) if f.name != "extra")
# A message from an older publisher may lack the optional trace context and subject.
REQUIRED_ON_WIRE: tuple[str, ...] = tuple(
    f for f in STORED_FIELDS if f not in ("traceparent", "subject")
)


def _encode(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
