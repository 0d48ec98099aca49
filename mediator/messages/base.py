"""Domain events and commands, and the registry of their type names.

An event is an immutable, typed value named in the past tense
(`OrderCancelled`): it says what happened, and any number of handlers react.
A command is named in the imperative (`CancelOrder`): it asks for one thing,
and exactly one handler does it. Both have a stable type name
(`"ordering.OrderCancelled"`) and a version, in one namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pydantic

from mediator.exceptions import UnknownEventType


class MessageTypes:
    """Every concrete message class, by type name. Newest definition wins a
    lookup; duplicates are reported by the system checks (mediator.E001)."""

    def __init__(self) -> None:
        self._classes: list[type[Message]] = []

    def register(self, cls: type[Message]) -> None:
        self._classes.append(cls)

    def all(self) -> list[type[Message]]:
        return list(self._classes)

    def get(self, event_type: str) -> type[Message]:
        for cls in reversed(self._classes):
            if cls.event_type == event_type:
                return cls
        raise UnknownEventType(f"Unknown event type {event_type!r}: no event class has that name.")

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """Classes declared inside the block are forgotten after it (tests)."""
        saved = list(self._classes)
        try:
            yield
        finally:
            self._classes[:] = saved


message_types = MessageTypes()


class Message(pydantic.BaseModel):
    """What travels through the mediator: subclass DomainEvent or Command, not this.

    Subclasses have typed fields. `event_type` (the type name on the wire, for
    commands too) defaults to "<app>.<ClassName>"; set it explicitly to keep it
    stable across renames. Bump `version` when the payload changes incompatibly.
    A base class of other messages sets `abstract = True`: it has no type name.
    `about` names the field that says what the message is about (`"order_id"`):
    its value is kept in an indexed outbox column (the envelope's `subject`),
    so the history of one order is found without reading every payload
    (mediator.observability.timeline.events_about).
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str] = ""
    version: ClassVar[int] = 1
    kind: ClassVar[str] = "message"
    abstract: ClassVar[bool] = True
    about: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        cls.abstract = False
        if cls.about and cls.about not in cls.model_fields:
            raise TypeError(f"{cls.__qualname__}.about = {cls.about!r} names none of its fields.")
        if "event_type" not in cls.__dict__:
            cls.event_type = f"{cls.__module__.split('.')[0]}.{cls.__name__}"
        message_types.register(cls)

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class DomainEvent(Message):
    """Something that happened, in the past tense. `publish()` it; every
    handler subscribed to it gets it, each in its own task."""

    kind: ClassVar[str] = "event"
    abstract: ClassVar[bool] = True


class Command(Message):
    """A request, in the imperative (`CancelOrder`). Declare it in the app that
    owns the change (its `commands.py`); the handler lives in that app too."""

    kind: ClassVar[str] = "command"
    abstract: ClassVar[bool] = True
