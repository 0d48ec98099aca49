"""One delivery run in this process, the way a worker runs it, without a broker.

Each attempt is the handler's own Celery task run by `Task.apply()`, so it
goes through everything a worker's run goes through (mediator.worker.run):
decoding the envelope into the typed message, the behaviours, the inbox
transaction (a delivery the inbox has seen is skipped), the outcome decision
with the handler's retry budget, and the poisoned-task record. What Celery
would schedule after a countdown is run at once instead: a retry is the next
attempt, with one more retry spent. A deferral (an open circuit breaker, a
handler that raised Deferred) ends the delivery as "deferred": a worker would
come back after the countdown, a test delivers again when the cause is gone.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from celery.exceptions import Retry
from django.conf import settings
from django.test import override_settings

from mediator.delivery.dispatch import delivery_task_id
from mediator.delivery.models import PoisonedTask
from mediator.exceptions import HandlerPoisoned, MessageError
from mediator.handlers.registry import handler_registry
from mediator.handlers.spec import HandlerSpec
from mediator.messages.base import Message
from mediator.messages.envelope import Envelope
from mediator.signals import delivery_deferred, delivery_retrying

# Attempts past the handler's retry budget before we call it a loop: only a
# poisoned row the database refused to write is tried beyond the budget.
EXTRA_ATTEMPTS = 10


class Outcome(StrEnum):
    DONE = "done"
    DUPLICATE = "duplicate"  # the inbox had it: skipped, the handler not called
    POISONED = "poisoned"  # a PoisonedTask row, retries spent or none worth trying
    DEFERRED = "deferred"  # put off without spending a retry; not run to its end here


@dataclass
class Delivery:
    """How one message's delivery to one handler ended."""

    handler: str
    envelope: Envelope
    outcome: Outcome
    attempts: int
    retries: int  # retries spent (attempts after the first that were retries)
    errors: list[str] = field(default_factory=list)  # "Type: text" of each failed attempt
    # What a worker would have waited after each failed attempt that was tried
    # again (or put off): the handler's backoff with its jitter.
    countdowns: list[float] = field(default_factory=list)

    @property
    def message(self) -> Message:
        return self.envelope.event()

    @property
    def event_type(self) -> str:
        return self.envelope.event_type

    @property
    def poisoned_task(self) -> PoisonedTask | None:
        """The operator's record of this delivery, if it was poisoned (now or before)."""
        return PoisonedTask.objects.filter(
            event_id=self.envelope.event_id, handler=self.handler
        ).first()

    def __str__(self) -> str:
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        last = f" ({self.errors[-1]})" if self.errors else ""
        return f"{self.handler} <- {self.event_type}: {self.outcome.value} after {tries}{last}"


HandlerRef = str | HandlerSpec | Callable[..., Any]


def resolve_handler(handler: HandlerRef) -> HandlerSpec:
    """A handler by its task name, its function or its spec."""
    if isinstance(handler, HandlerSpec):
        return handler
    if isinstance(handler, str):
        spec = handler_registry.get(handler)
        if spec is None:
            raise LookupError(f"No handler named {handler!r} is registered.")
        return spec
    for spec in handler_registry.all():
        if spec.func is handler:
            return spec
    raise LookupError(f"{handler!r} is not a registered handler (is it decorated with @handles?).")


def handler_name(handler: HandlerRef) -> str:
    return resolve_handler(handler).name


@contextmanager
def in_process() -> Iterator[None]:
    """Deliveries run here record "running" before each run, as a worker on
    SQLite does, rather than from a watcher thread after a while (the
    PostgreSQL worker's way): that thread writes on a connection of its own,
    which would commit a row past the test's transaction."""
    with override_settings(
        MEDIATOR={**getattr(settings, "MEDIATOR", {}), "RECORD_RUNNING_AFTER": 0}
    ):
        yield


class _Signalled:
    """What carry_out signalled about one attempt of one handler."""

    def __init__(self, handler: str) -> None:
        self.handler = handler
        self.retrying: float | None = None
        self.deferred: float | None = None

    def _retrying(self, *, handler: str, countdown: float, **_: Any) -> None:
        if handler == self.handler:
            self.retrying = countdown

    def _deferred(self, *, handler: str, countdown: float, **_: Any) -> None:
        if handler == self.handler:
            self.deferred = countdown

    def __enter__(self) -> _Signalled:
        delivery_retrying.connect(self._retrying, weak=False)
        delivery_deferred.connect(self._deferred, weak=False)
        return self

    def __exit__(self, *exc: object) -> None:
        delivery_retrying.disconnect(self._retrying)
        delivery_deferred.disconnect(self._deferred)


def deliver_one(envelope: Envelope, spec: HandlerSpec) -> Delivery:
    """Run `spec`'s task on the envelope until it is done, skipped, poisoned or deferred."""
    task = spec.task
    if task is None:
        raise RuntimeError(
            f"{spec.name} has no Celery task: is 'mediator' in INSTALLED_APPS, and the "
            "project's Celery app loaded (imported by the project package's __init__)?"
        )
    message = envelope.to_message()
    task_id = delivery_task_id(envelope.event_id, spec.name)
    delivery = Delivery(
        handler=spec.name, envelope=envelope, outcome=Outcome.DONE, attempts=0, retries=0
    )
    for attempt in itertools.count(1):
        if attempt > spec.max_retries + 1 + EXTRA_ATTEMPTS:
            raise RuntimeError(f"{spec.name} did not settle in {attempt - 1} attempts: {delivery}")
        delivery.attempts = attempt
        with _Signalled(spec.name) as signalled:
            try:
                # throw=True: Celery's retry reaches us instead of being applied at once.
                result = task.apply(
                    args=(message,), task_id=task_id, retries=delivery.retries, throw=True
                )
            except Retry as retry:
                delivery.errors.append(_described(retry.exc))
                if signalled.deferred is not None:
                    delivery.countdowns.append(signalled.deferred)
                    delivery.outcome = Outcome.DEFERRED
                    return delivery
                when = retry.when if isinstance(retry.when, int | float) else 0.0
                delivery.countdowns.append(
                    float(when) if signalled.retrying is None else signalled.retrying
                )
                delivery.retries += 1
                continue
            except HandlerPoisoned as poisoned:
                delivery.errors.append(str(poisoned))
                delivery.outcome = Outcome.POISONED
                return delivery
        delivery.outcome = Outcome(str(result.result))
        return delivery
    raise AssertionError("unreachable")  # pragma: no cover


def _described(exc: BaseException | None) -> str:
    if exc is None:
        return "retried"
    return f"{type(exc).__name__}: {exc}"


def decode(envelope: Envelope) -> Message:
    """The typed message of an outbox row, or an AssertionError saying why
    a worker could not read it (it would poison every delivery of it)."""
    try:
        return envelope.event()
    except MessageError as exc:
        raise AssertionError(
            f"The outbox holds {envelope.event_type} {envelope.event_id}, which cannot be "
            f"read as a message: {type(exc).__name__}: {exc}"
        ) from None
