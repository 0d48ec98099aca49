"""What code wrote to the outbox, as typed messages, and delivering it in-process.

The outbox rows are the truth: publish(), send_after_commit(), start_saga()
and every saga step write one in the caller's transaction, and a rolled-back
transaction or savepoint takes its rows with it. So an Outbox (a window on
the outbox table, by row id) shows exactly what would be delivered if the
test's transaction committed, under pytest-django's `db` (which never
commits, so on_commit never runs) as under `transactional_db`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from django.db import DatabaseError, connection
from django.db.models import Max

from mediator.delivery.mapping import COLUMNS, envelope_of
from mediator.delivery.models import OutboxMessage
from mediator.handlers.registry import handler_registry
from mediator.handlers.spec import HandlerSpec
from mediator.messages.base import Message
from mediator.messages.envelope import Envelope
from mediator.testing.inprocess import (
    Delivery,
    HandlerRef,
    Outcome,
    decode,
    deliver_one,
    handler_name,
    in_process,
    resolve_handler,
)

M = TypeVar("M", bound=Message)

# Rounds of deliver(cascade=True) before a handler publishing forever is an error.
MAX_CASCADE_ROUNDS = 50


def last_outbox_id() -> int:
    return int(OutboxMessage.objects.aggregate(last=Max("pk"))["last"] or 0)


class Outbox(Sequence[Message]):
    """The outbox rows written after row `after` (and up to row `upto`, once
    the window is closed), as typed messages in the order they were written.

    It reads the table each time it is asked, so it is always current. It is
    a sequence of messages: `list(outbox)`, `outbox[0]`, `len(outbox)`.
    """

    def __init__(self, *, after: int, upto: int | None = None) -> None:
        self.after = after
        self.upto = upto

    @classmethod
    def from_now(cls) -> Outbox:
        """An open window: everything written from now on."""
        return cls(after=last_outbox_id())

    # What is in it

    @property
    def envelopes(self) -> list[Envelope]:
        rows = OutboxMessage.objects.filter(pk__gt=self.after)
        if self.upto is not None:
            rows = rows.filter(pk__lte=self.upto)
        return [envelope_of(row) for row in rows.only(*COLUMNS).order_by("pk")]

    @property
    def messages(self) -> list[Message]:
        return [decode(envelope) for envelope in self.envelopes]

    @property
    def events(self) -> list[Message]:
        """What was published (publish), without the commands."""
        return [m for m in self.messages if m.kind == "event"]

    @property
    def commands(self) -> list[Message]:
        """What was sent after commit (send_after_commit, saga steps)."""
        return [m for m in self.messages if m.kind == "command"]

    def of_type(self, cls: type[M]) -> list[M]:
        return [m for m in self.messages if isinstance(m, cls)]

    def envelope_of(self, message: Message) -> Envelope:
        """The envelope (event id, correlation and causation ids, ...) of a
        message in the window; the first, if equal messages were written twice."""
        for envelope in self.envelopes:
            if decode(envelope) == message:
                return envelope
        raise AssertionError(f"{message!r} is not in the outbox window; {self.listing()}")

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...
    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        return self.messages[index]

    def __len__(self) -> int:
        return len(self.envelopes)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def __repr__(self) -> str:
        upto = "" if self.upto is None else f", upto={self.upto}"
        return f"<Outbox after={self.after}{upto}: {len(self)} message(s)>"

    def listing(self) -> str:
        """What the window holds, one numbered line each (for failure messages)."""
        envelopes = self.envelopes
        if not envelopes:
            return "nothing was written to the outbox"
        lines = [f"  {n}. {_shown(envelope)}" for n, envelope in enumerate(envelopes, 1)]
        return f"the outbox holds {len(lines)} message(s):\n" + "\n".join(lines)

    # Assertions (each fails with what the window does hold)

    def one(self, cls: type[M], **fields: Any) -> M:
        """The one message of `cls` (with these field values); fails unless exactly one."""
        matches = self._matching(cls, fields)
        if len(matches) != 1:
            raise AssertionError(
                f"Expected exactly one {_wanted(cls, fields)}, found {len(matches)}; "
                f"{self.listing()}"
            )
        return matches[0]

    def assert_published(self, cls: type[M], **fields: Any) -> M:
        """The first message of `cls` (with these field values); fails if there is none."""
        matches = self._matching(cls, fields)
        if not matches:
            raise AssertionError(f"Expected {_wanted(cls, fields)}; {self.listing()}")
        return matches[0]

    def assert_not_published(self, cls: type[Message], **fields: Any) -> None:
        matches = self._matching(cls, fields)
        if matches:
            raise AssertionError(
                f"Expected no {_wanted(cls, fields)}, found {len(matches)}; {self.listing()}"
            )

    def assert_nothing_published(self) -> None:
        if len(self):
            raise AssertionError(f"Expected nothing in the outbox; {self.listing()}")

    def _matching(self, cls: type[M], fields: dict[str, Any]) -> list[M]:
        unknown = set(fields) - set(cls.model_fields)
        if unknown:
            raise TypeError(
                f"{cls.__name__} has no field(s) {sorted(unknown)}; "
                f"its fields are {sorted(cls.model_fields)}."
            )
        return [m for m in self.of_type(cls) if all(getattr(m, k) == v for k, v in fields.items())]

    # Blocks and deliveries

    @contextmanager
    def capture(self) -> Iterator[Outbox]:
        """A window on what the block writes:
        `with mediator_outbox.capture() as captured: ...`."""
        window = Outbox.from_now()
        try:
            yield window
        finally:
            window.upto = _closing_id(window.after)

    def deliver(self, *, handler: HandlerRef | None = None, cascade: bool = False) -> Deliveries:
        """Deliver every message in the window to every handler subscribed to
        it (or only to `handler`), in order, in this process (see
        mediator.testing.inprocess). Calling it again is a redelivery: the
        inbox skips what was done. With cascade=True, what the handlers wrote
        to the outbox is delivered too, round after round, until they write
        nothing more (a saga runs to its end)."""
        run = deliver_envelopes(self.envelopes, handler=handler, explicit=False)
        if not cascade:
            return run
        runs = [run]
        while len(runs[-1].published):
            if len(runs) == MAX_CASCADE_ROUNDS:
                raise AssertionError(
                    f"Handlers were still writing to the outbox after {len(runs)} rounds; "
                    f"the last round wrote: {runs[-1].published.listing()}"
                )
            runs.append(runs[-1].published.deliver(handler=handler))
        return Deliveries(
            [d for r in runs for d in r],
            published=Outbox(after=run.published.after, upto=runs[-1].published.upto),
            handler=handler,
        )


class Deliveries(Sequence[Delivery]):
    """The deliveries of one deliver() call, in the order they ran, and
    what their handlers wrote to the outbox (`published`)."""

    def __init__(
        self,
        deliveries: Iterable[Delivery],
        *,
        published: Outbox,
        handler: HandlerRef | None = None,
    ) -> None:
        self._deliveries = list(deliveries)
        self.published = published
        self._handler = handler

    @overload
    def __getitem__(self, index: int) -> Delivery: ...
    @overload
    def __getitem__(self, index: slice) -> list[Delivery]: ...
    def __getitem__(self, index: int | slice) -> Delivery | list[Delivery]:
        return self._deliveries[index]

    def __len__(self) -> int:
        return len(self._deliveries)

    def __repr__(self) -> str:
        return f"<Deliveries: {self.listing()}>"

    def listing(self) -> str:
        if not self._deliveries:
            return "nothing was delivered (no handler subscribes to these messages)"
        return "\n".join(f"  {d}" for d in self._deliveries)

    def for_handler(self, handler: HandlerRef) -> list[Delivery]:
        name = handler_name(handler)
        return [d for d in self._deliveries if d.handler == name]

    def of(self, handler: HandlerRef) -> Delivery:
        """The one delivery to `handler` (a task name, the function, or its spec)."""
        found = self.for_handler(handler)
        if len(found) != 1:
            raise AssertionError(
                f"Expected one delivery to {handler_name(handler)}, found {len(found)}:\n"
                f"{self.listing()}"
            )
        return found[0]

    def outcome(self, handler: HandlerRef) -> Outcome:
        return self.of(handler).outcome

    @property
    def outcomes(self) -> list[tuple[str, Outcome]]:
        return [(d.handler, d.outcome) for d in self._deliveries]

    def assert_all(self, outcome: Outcome | str) -> None:
        """Fails unless there were deliveries and every one ended so."""
        wanted = Outcome(outcome)
        if not self._deliveries or any(d.outcome is not wanted for d in self._deliveries):
            raise AssertionError(f"Expected every delivery {wanted.value}:\n{self.listing()}")

    def redeliver(self) -> Deliveries:
        """The same messages to the same handlers again, as a broker that
        hands a task over twice would."""
        after = last_outbox_id()
        with in_process():
            again = [deliver_one(d.envelope, resolve_handler(d.handler)) for d in self]
        return Deliveries(again, published=Outbox(after=after, upto=last_outbox_id()))


def deliver(
    message: Message | Envelope | Iterable[Message | Envelope],
    *,
    handler: HandlerRef | None = None,
) -> Deliveries:
    """Deliver a message (or several), built by the test, to the handlers
    subscribed to it (or to `handler`), in this process. A message is wrapped
    in a new envelope, so delivering the same message object twice is two
    events; to redeliver one, call .redeliver() on what this returns."""
    items = [message] if isinstance(message, Message | Envelope) else list(message)
    envelopes = [
        item
        if isinstance(item, Envelope)
        else Envelope.wrap(item, correlation_id=None, causation_id=None)
        for item in items
    ]
    return deliver_envelopes(envelopes, handler=handler, explicit=True)


def deliver_envelopes(
    envelopes: Sequence[Envelope], *, handler: HandlerRef | None, explicit: bool
) -> Deliveries:
    """With explicit=True, a `handler` that does not handle one of the
    envelopes is an error; a window's deliver() just leaves those out."""
    chosen = None if handler is None else resolve_handler(handler)
    plan: list[tuple[Envelope, HandlerSpec]] = []
    for envelope in envelopes:
        subscribed = handler_registry.for_type(envelope.event_type)
        if chosen is None:
            plan += [(envelope, spec) for spec in subscribed]
        elif any(spec.name == chosen.name for spec in subscribed):
            plan.append((envelope, chosen))
        elif explicit:
            raise ValueError(f"{chosen.name} does not handle {envelope.event_type}.")
    after = last_outbox_id()
    with in_process():
        done = [deliver_one(envelope, spec) for envelope, spec in plan]
    return Deliveries(done, published=Outbox(after=after, upto=last_outbox_id()), handler=handler)


def _closing_id(after: int) -> int:
    """The last row of a block. If the block left its transaction unusable
    (a database error inside an atomic block that has not ended yet), that
    transaction is rolled back, and the block's rows with it: none are left."""
    if connection.needs_rollback:
        return after
    try:
        return last_outbox_id()
    except DatabaseError:
        return after


def _shown(envelope: Envelope) -> str:
    try:
        return repr(envelope.event())
    except Exception as exc:
        return f"{envelope.event_type} {envelope.payload!r} (unreadable: {exc})"


def _wanted(cls: type[Message], fields: dict[str, Any]) -> str:
    values = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"{cls.__name__}({values})" if fields else cls.__name__
