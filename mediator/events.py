"""Domain events and commands, and the envelope they travel in.

An event is an immutable, typed value named in the past tense
(`OrderCancelled`): it says what happened, and any number of handlers react.
A command is named in the imperative (`CancelOrder`): it asks for one thing,
and exactly one handler does it. Both have a stable type name
(`"ordering.OrderCancelled"`) and a version. On the wire they are JSON: an
envelope whose `payload` is validated against the class when it arrives, so a
wrong type or an unknown field is a clear error, never a half-read message.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import pydantic
from django.utils import timezone

from mediator.conf import mediator_settings
from mediator.exceptions import ImproperEvent, InvalidPayload, MalformedMessage, UnknownEventType

_message_classes: list[type[Message]] = []


class Message(pydantic.BaseModel):
    """What travels through the mediator: subclass DomainEvent or Command, not this.

    Subclasses have typed fields. `event_type` (the type name on the wire, for
    commands too) defaults to "<app>.<ClassName>"; set it explicitly to keep it
    stable across renames. Bump `version` when the payload changes incompatibly.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str] = ""
    version: ClassVar[int] = 1
    kind: ClassVar[str] = "message"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__module__ in (__name__, "mediator.commands", "mediator.sagas"):
            return  # the base classes themselves
        if "event_type" not in cls.__dict__:
            cls.event_type = f"{cls.__module__.split('.')[0]}.{cls.__name__}"
        _message_classes.append(cls)

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class DomainEvent(Message):
    """Something that happened, in the past tense. `publish()` it; every
    handler subscribed to it gets it, each in its own task."""

    kind: ClassVar[str] = "event"


def all_message_classes() -> list[type[Message]]:
    return list(_message_classes)


def all_event_classes() -> list[type[Message]]:
    """Event and command classes: they share one namespace of type names."""
    return all_message_classes()


def event_class_for(event_type: str) -> type[Message]:
    # Newest definition wins; duplicates are reported by the system checks.
    for cls in reversed(_message_classes):
        if cls.event_type == event_type:
            return cls
    raise UnknownEventType(f"Unknown event type {event_type!r}: no event class has that name.")


def check_payload_size(event_type: str, size: int) -> None:
    limit = int(mediator_settings()["MAX_PAYLOAD_BYTES"])
    if size > limit:
        raise InvalidPayload(
            f"{event_type} payload is {size} bytes, over the {limit}-byte limit "
            "(MEDIATOR['MAX_PAYLOAD_BYTES']): carry ids, not documents."
        )


ENVELOPE_FIELDS = (
    "event_id",
    "event_type",
    "version",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "payload",
)


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
        if not isinstance(event, Message) or type(event) in (Message, DomainEvent):
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
            correlation_id=correlation_id or str(event_id),
            causation_id=causation_id or "",
            traceparent=traceparent,
        )

    def to_message(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "version": self.version,
            "occurred_at": self.occurred_at.isoformat(),
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "payload": self.payload,
            "traceparent": self.traceparent,
        }

    @classmethod
    def from_message(cls, message: Any) -> Envelope:
        if not isinstance(message, dict):
            raise MalformedMessage(
                f"Expected an event envelope (a JSON object), got {type(message).__name__}: "
                f"{str(message)[:200]}"
            )
        missing = [name for name in ENVELOPE_FIELDS if name not in message]
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
            correlation_id=str(message["correlation_id"] or ""),
            causation_id=str(message["causation_id"] or ""),
            traceparent=str(message.get("traceparent") or "")[:64],
            extra={
                k: v for k, v in message.items() if k not in ENVELOPE_FIELDS and k != "traceparent"
            },
        )

    def event(self) -> Message:
        """The typed event, or UnknownEventType / InvalidPayload saying why not."""
        cls = event_class_for(self.event_type)
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
