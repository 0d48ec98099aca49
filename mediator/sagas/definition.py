"""Sagas: a workflow whose steps live in different apps and depend on each
other, undone newest first when a step fails.

    class Checkout(Saga):
        steps = [
            Step(ReserveStock, compensate=ReleaseStock),
            Step(ChargePayment, compensate=RefundPayment, retries=3, timeout=20),
            Step(BookShipment, compensate=CancelShipmentBooking),
            Step(SendOrderConfirmation),
        ]

    with transaction.atomic():
        order = Order.objects.create(...)
        start_saga(Checkout, {"order_id": order.pk, ...})

A step sends a command to its one handler, in whatever app owns it. The
command's fields are filled by name from the run's data, the run's id
(`saga_run_id`) and the outputs of the steps before it: a handler may return a
small dict of JSON values, which later steps (and its own compensation)
receive. Each step and each compensation is a Celery task of its own, on the
mediator's path: outbox, inbox, retries with backoff, poisoning.
mediator.sagas.runner runs them: it registers each step's handler when the
saga is declared (the `saga_registered` signal).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import connection

from mediator.delivery.outbox import write_to_outbox
from mediator.exceptions import ImproperEvent, PublishOutsideTransaction, SagaError
from mediator.messages.base import Command, message_types
from mediator.messages.context import (
    current_causation_id,
    current_correlation_id,
    message_context,
)
from mediator.messages.envelope import check_payload_size
from mediator.sagas.models import SagaRun, SagaStep
from mediator.signals import saga_registered

ACTION = "action"
COMPENSATION = "compensation"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SagaMessage(Command):
    """The task message of one step (or compensation) of one run."""

    abstract: ClassVar[bool] = True

    run_id: uuid.UUID
    step: int


@dataclass(frozen=True)
class Step:
    """One step: the command that does it, and the command that undoes it.

    `retries` is how often a failing action is tried again (default
    MEDIATOR["MAX_RETRIES"]) before the step counts as failed and the saga
    compensates; a PermanentError, or any exception that is not in RETRY_ON,
    fails it at once. `timeout` is seconds per try: past it the try raises
    SoftTimeLimitExceeded (and is retried); 10 s later the process is killed.
    A compensation is retried `compensation_retries` times, then poisoned: the
    run says "compensation stuck" until an operator retries it.
    """

    action: type[Command] | str
    compensate: type[Command] | str | None = None
    name: str = ""
    retries: int | None = None
    compensation_retries: int | None = None
    backoff: float | None = None
    timeout: float | None = None

    @property
    def step_name(self) -> str:
        if self.name:
            return self.name
        base = self.action if isinstance(self.action, str) else self.action.__name__
        base = base.rsplit(".", 1)[-1]
        return re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()


def command_type(target: type[Command] | str) -> type[Command]:
    """The command class a step names (a class, or its wire name)."""
    cls = message_types.get(target) if isinstance(target, str) else target
    if not (isinstance(cls, type) and issubclass(cls, Command)):
        article = "an" if cls.kind[0] in "aeiou" else "a"
        raise SagaError(f"A saga step sends a Command; {cls.__name__} is {article} {cls.kind}.")
    return cls


class Saga:
    """Subclass with `steps`; `name` defaults to "<app>.<ClassName>" (set it to
    keep it stable across renames: the task names are built from it).

    `on_completed(run)` and `on_compensated(run)` run in the transaction that
    ends the run: use them to record the outcome in the app that owns it.
    """

    name: ClassVar[str] = ""
    steps: ClassVar[Sequence[Step]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = f"{cls.__module__.split('.')[0]}.{cls.__name__}"
        saga_registry.register(cls)

    @classmethod
    def on_completed(cls, run: SagaRun) -> None:
        """Every step is done."""

    @classmethod
    def on_compensated(cls, run: SagaRun) -> None:
        """A step failed and every completed step was undone; run.error says why."""

    @classmethod
    def message_type(cls, index: int, phase: str) -> type[SagaMessage]:
        return saga_registry.message_type(cls, index, phase)

    @classmethod
    def task_name(cls, index: int, phase: str) -> str:
        suffix = ".compensate" if phase == COMPENSATION else ""
        return f"saga.{cls.name}.{cls.steps[index].step_name}{suffix}"


class SagaRegistry:
    """Declared sagas, and the message type and task name of each step."""

    def __init__(self) -> None:
        self._sagas: dict[str, type[Saga]] = {}
        self._messages: dict[tuple[str, int, str], type[SagaMessage]] = {}
        self._by_task: dict[str, tuple[type[Saga], int, str]] = {}

    def register(self, saga: type[Saga]) -> None:
        _check_declaration(saga)
        if saga.name in self._sagas and self._sagas[saga.name] is not saga:
            raise SagaError(f"Two sagas are named {saga.name!r}; set `name` on one of them.")
        self._sagas[saga.name] = saga
        for index, step in enumerate(saga.steps):
            phases = [ACTION, COMPENSATION] if step.compensate is not None else [ACTION]
            for phase in phases:
                task = saga.task_name(index, phase)
                message = type(
                    f"{saga.__name__}_{step.step_name}_{phase}",
                    (SagaMessage,),
                    {"__module__": saga.__module__, "event_type": task},
                )
                self._messages[(saga.name, index, phase)] = message
                self._by_task[task] = (saga, index, phase)
        saga_registered.send(sender=type(self), saga=saga)

    def named(self, name: str) -> type[Saga] | None:
        return self._sagas.get(name)

    def all(self) -> list[type[Saga]]:
        return list(self._sagas.values())

    def message_type(self, saga: type[Saga], index: int, phase: str) -> type[SagaMessage]:
        return self._messages[(saga.name, index, phase)]

    def step_of_task(self, task: str) -> tuple[type[Saga], int, str] | None:
        """(saga, step index, phase) of a step's task name, or None."""
        return self._by_task.get(task)

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """Sagas declared inside the block are forgotten after it (tests)."""
        saved = (dict(self._sagas), dict(self._messages), dict(self._by_task))
        try:
            yield
        finally:
            self._sagas, self._messages, self._by_task = saved


def _check_declaration(saga: type[Saga]) -> None:
    if not saga.steps:
        raise SagaError(f"Saga {saga.__name__} declares no steps.")
    for step in saga.steps:
        if not isinstance(step, Step):
            raise SagaError(f"{saga.__name__}.steps holds {step!r}; list Step(...) objects.")
    names = [step.step_name for step in saga.steps]
    for step, name in zip(saga.steps, names, strict=True):
        if not _NAME.match(name):
            raise SagaError(f"Step name {name!r} of {saga.__name__} must be snake_case.")
        for target in (step.action, step.compensate):
            if isinstance(target, type) and not issubclass(target, Command):
                raise SagaError(f"A saga step sends a Command; {target.__name__} is not one.")
    if len(set(names)) != len(names):
        raise SagaError(f"{saga.__name__} has two steps named alike: {names}; pass name=...")


saga_registry = SagaRegistry()


def saga_named(name: str) -> type[Saga] | None:
    return saga_registry.named(name)


def all_sagas() -> list[type[Saga]]:
    return saga_registry.all()


def step_of_task(task: str) -> tuple[type[Saga], int, str] | None:
    """(saga, step index, phase) of a step's task name, or None."""
    return saga_registry.step_of_task(task)


def start_saga(saga: type[Saga], data: Mapping[str, Any]) -> uuid.UUID:
    """Start a run of `saga` with `data` (a dict of JSON values); returns its id.

    Like publish(), it must be called inside `transaction.atomic()`: the run
    and its first step's message are written in the caller's transaction, so a
    rollback starts nothing, and a commit starts it even if the broker is down
    then (the relay sends it later).
    """
    if not (isinstance(saga, type) and issubclass(saga, Saga)) or saga_named(saga.name) is not saga:
        raise SagaError(f"start_saga() takes a Saga subclass, not {saga!r}.")
    if not connection.in_atomic_block:
        raise PublishOutsideTransaction(
            f"start_saga({saga.__name__}) was called outside a transaction. Wrap the change "
            "and the start in `with transaction.atomic():` so the run starts only if it commits."
        )
    try:
        raw = json.dumps(dict(data))
    except (TypeError, ValueError) as exc:
        raise ImproperEvent(
            f"{saga.__name__} data must be a dict of JSON values (pass a Decimal as str): {exc}"
        ) from None
    check_payload_size(saga.name, len(raw))
    run_id = uuid.uuid4()
    correlation_id = current_correlation_id() or str(run_id)
    run = SagaRun.objects.create(
        id=run_id, saga=saga.name, data=json.loads(raw), correlation_id=correlation_id
    )
    SagaStep.objects.bulk_create(
        SagaStep(
            run=run,
            index=index,
            name=step.step_name,
            action=command_label(step.action),
            compensation=command_label(step.compensate) if step.compensate else "",
        )
        for index, step in enumerate(saga.steps)
    )
    with message_context(correlation_id=correlation_id, causation_id=current_causation_id()):
        write_to_outbox(saga.message_type(0, ACTION)(run_id=run_id, step=0), "start_saga")
    return run_id


def command_label(target: type[Command] | str) -> str:
    return target if isinstance(target, str) else target.event_type
