"""Running saga steps and compensations, one Celery task each.

Every step and compensation is a handler (`@handles`) of its own message
type, named "saga.<Saga>.<step>" and "saga.<Saga>.<step>.compensate", with
the step's retries and timeout. It runs the step's command with `send()` and,
in the same transaction, claims its inbox record, records the outcome and
writes the next step's message to the outbox. So a step's database effect
applies once however often its task is delivered, a crash anywhere leaves the
run where the last commit put it, and the relay and the reconciler resume it
as they would any event.

Ways a run moves:
- the action succeeds: the next step's message, or "completed";
- the action fails for good (a refusal, or retries spent): the step is
  "failed" and the newest completed step with a compensation is undone
  first, then the one before it, and so on to "compensated";
- a compensation fails: it is retried; when it is poisoned the run is
  "stuck" until an operator retries the poisoned task (then it goes on).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from mediator.delivery import inbox
from mediator.delivery.models import PoisonedTask, PoisonStatus
from mediator.delivery.outbox import write_to_outbox
from mediator.delivery.send import send
from mediator.exceptions import Deferred, InvalidPayload, StepOutputError
from mediator.handlers.pipeline import HandlerContext, current_handler_context
from mediator.handlers.registry import handles
from mediator.messages.base import Command
from mediator.messages.context import message_context
from mediator.sagas.definition import (
    ACTION,
    COMPENSATION,
    Saga,
    SagaMessage,
    command_type,
    saga_registry,
)
from mediator.sagas.models import RunState, SagaRun, SagaStep, StepState
from mediator.signals import delivery_poisoned, saga_finished, saga_registered

logger = logging.getLogger("mediator.saga")

OUTPUT_LIMIT = 4096  # bytes of JSON a step may hand to later steps
ERROR_LENGTH = 2000
HARD_TIMEOUT_MARGIN = 10.0  # seconds between a step's soft and hard time limit


def register_step_handlers(saga: type[Saga]) -> None:
    """A handler for each step's action and compensation (their tasks follow)."""
    for index, step in enumerate(saga.steps):
        phases = [ACTION, COMPENSATION] if step.compensate is not None else [ACTION]
        for phase in phases:
            _register_step_handler(saga, index, phase)


def _register_step_handler(saga: type[Saga], index: int, phase: str) -> None:
    step = saga.steps[index]
    message: type[SagaMessage] = saga.message_type(index, phase)
    task = saga.task_name(index, phase)
    retries = step.retries if phase == ACTION else step.compensation_retries

    def run(msg: SagaMessage) -> None:
        if msg.step != index:
            raise InvalidPayload(f"{task} got a message for step {msg.step}, not {index}.")
        if phase == ACTION:
            run_action(saga, index, msg.run_id)
        else:
            run_compensation(saga, index, msg.run_id)

    handles(
        message,
        name=task,
        max_retries=retries,
        backoff=step.backoff,
        soft_time_limit=step.timeout,
        time_limit=step.timeout + HARD_TIMEOUT_MARGIN if step.timeout else None,
        # Not the transaction behaviour's: the runner opens its own, so that a
        # failed try's attempt count and error survive the rollback.
        atomic=False,
    )(run)


def run_action(saga: type[Saga], index: int, run_id: uuid.UUID) -> None:
    context = current_handler_context()
    if not _begin(run_id, index, ACTION):
        return  # the run has moved on (a redelivery, or a retry from the admin)
    try:
        with transaction.atomic():
            run = _locked_run(run_id)
            step = run.steps.get(index=index)
            if not (
                run.state == RunState.RUNNING
                and run.current_step == index
                and step.state in (StepState.PENDING, StepState.RUNNING)
                and inbox.claim(context.message_id, context.handler)
            ):
                return
            command = build_command(saga.steps[index].action, run, upto=index - 1)
            step.output = step_output(send(command), saga, index)
            step.state = StepState.DONE
            step.finished_at = timezone.now()
            step.save(update_fields=["output", "state", "finished_at"])
            if index + 1 < len(saga.steps):
                _advance(saga, run, index + 1)
            else:
                _finish(saga, run, RunState.COMPLETED)
    except Exception as exc:
        if isinstance(exc, Deferred):
            raise
        if _will_retry(context, exc):
            _note_error(run_id, index, ACTION, exc)
            raise
        fail_step(saga, run_id, index, _describe(exc), context)


def run_compensation(saga: type[Saga], index: int, run_id: uuid.UUID) -> None:
    context = current_handler_context()
    if not _begin(run_id, index, COMPENSATION):
        return
    try:
        with transaction.atomic():
            run = _locked_run(run_id)
            step = run.steps.get(index=index)
            if not (
                run.state in (RunState.COMPENSATING, RunState.STUCK)
                and run.current_step == index
                and step.state in (StepState.DONE, StepState.COMPENSATING)
                and inbox.claim(context.message_id, context.handler)
            ):
                return
            compensate = saga.steps[index].compensate
            assert compensate is not None  # only steps with one get this task
            send(build_command(compensate, run, upto=index))
            step.state = StepState.COMPENSATED
            step.compensated_at = timezone.now()
            step.save(update_fields=["state", "compensated_at"])
            _compensate_from(saga, run, index - 1)
    except Exception as exc:
        if not isinstance(exc, Deferred):
            _note_error(run_id, index, COMPENSATION, exc)
        raise  # retried; when poisoned, on_poisoned marks the run stuck


def fail_step(
    saga: type[Saga],
    run_id: uuid.UUID,
    index: int,
    error: str,
    context: HandlerContext | None = None,
) -> None:
    """The action failed for good: record it and start undoing the steps before it."""
    with transaction.atomic():
        run = _locked_run(run_id)
        if run.state != RunState.RUNNING or run.current_step != index:
            return
        if context is not None and not inbox.claim(context.message_id, context.handler):
            return
        SagaStep.objects.filter(run=run, index=index).update(
            state=StepState.FAILED, error=error[:ERROR_LENGTH], finished_at=timezone.now()
        )
        run.failed_step = index
        run.error = f"{saga.steps[index].step_name} failed: {error}"[:ERROR_LENGTH]
        logger.warning("saga %s %s: %s; compensating", saga.name, run.pk, run.error)
        _compensate_from(saga, run, index - 1)


def build_command(target: type[Command] | str, run: SagaRun, *, upto: int) -> Command:
    """The command, its fields taken by name from the run's data, its id
    (`saga_run_id`) and the outputs of steps 0..upto, later ones winning."""
    cls = command_type(target)
    inputs: dict[str, Any] = {"saga_run_id": str(run.pk), **run.data}
    for step in run.steps.filter(index__lte=upto).order_by("index"):
        inputs.update(step.output or {})
    return cls.model_validate({name: inputs[name] for name in cls.model_fields if name in inputs})


def step_output(result: Any, saga: type[Saga], index: int) -> dict[str, Any]:
    name = saga.steps[index].step_name
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise StepOutputError(
            f"Step {name} of {saga.name} returned {type(result).__name__}; a saga step's "
            "handler returns None or a small dict of JSON values for the steps after it."
        )
    try:
        raw = json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise StepOutputError(
            f"Step {name} of {saga.name} returned a dict that is not JSON: {exc}"
        ) from None
    if len(raw) > OUTPUT_LIMIT:
        raise StepOutputError(
            f"Step {name} of {saga.name} returned {len(raw)} bytes; the limit is {OUTPUT_LIMIT}: "
            "hand on ids, not documents."
        )
    output: dict[str, Any] = json.loads(raw)
    return output


def _begin(run_id: uuid.UUID, index: int, phase: str) -> bool:
    """Count the try, in its own commit (a failed try rolls back everything
    else). False if the run is no longer at this step in this phase."""
    now = timezone.now()
    steps = SagaStep.objects.filter(run_id=run_id, index=index, run__current_step=index)
    if phase == ACTION:
        return bool(
            steps.filter(
                run__state=RunState.RUNNING, state__in=[StepState.PENDING, StepState.RUNNING]
            ).update(
                state=StepState.RUNNING,
                attempts=F("attempts") + 1,
                started_at=Coalesce("started_at", now),
            )
        )
    return bool(
        steps.filter(
            run__state__in=[RunState.COMPENSATING, RunState.STUCK],
            state__in=[StepState.DONE, StepState.COMPENSATING],
        ).update(
            state=StepState.COMPENSATING,
            compensation_attempts=F("compensation_attempts") + 1,
            compensation_started_at=Coalesce("compensation_started_at", now),
        )
    )


def _locked_run(run_id: uuid.UUID) -> SagaRun:
    return SagaRun.objects.select_for_update().get(pk=run_id)


def _advance(saga: type[Saga], run: SagaRun, index: int) -> None:
    run.current_step = index
    run.updated_at = timezone.now()
    run.save(update_fields=["current_step", "updated_at"])
    _send_step(saga, run, index, ACTION)


def _compensate_from(saga: type[Saga], run: SagaRun, newest: int) -> None:
    """Undo the newest completed step at or before `newest` that has a
    compensation; with none left, the run is compensated."""
    done = (
        run.steps.filter(index__lte=newest, state=StepState.DONE)
        .exclude(compensation="")
        .order_by("-index")
        .values_list("index", flat=True)
        .first()
    )
    if done is None:
        _finish(saga, run, RunState.COMPENSATED)
        return
    run.state = RunState.COMPENSATING
    run.current_step = done
    run.updated_at = timezone.now()
    run.save(update_fields=["state", "current_step", "failed_step", "error", "updated_at"])
    _send_step(saga, run, done, COMPENSATION)


def _finish(saga: type[Saga], run: SagaRun, state: str) -> None:
    run.state = state
    run.updated_at = run.finished_at = timezone.now()
    run.save(update_fields=["state", "failed_step", "error", "updated_at", "finished_at"])
    logger.info("saga %s %s %s", saga.name, run.pk, state)
    saga_finished.send(sender=Saga, saga=saga.name, run=run, state=state)
    if state == RunState.COMPLETED:
        saga.on_completed(run)
    else:
        saga.on_compensated(run)


def _send_step(saga: type[Saga], run: SagaRun, index: int, phase: str) -> None:
    write_to_outbox(saga.message_type(index, phase)(run_id=run.pk, step=index), "saga step")


def _will_retry(context: HandlerContext, exc: Exception) -> bool:
    return context.spec.should_retry(exc) and context.attempt <= context.spec.max_retries


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _note_error(run_id: uuid.UUID, index: int, phase: str, exc: BaseException) -> None:
    field = "error" if phase == ACTION else "compensation_error"
    try:
        SagaStep.objects.filter(run_id=run_id, index=index).update(
            **{field: _describe(exc)[:ERROR_LENGTH]}
        )
    except Exception:  # the database may be why the step failed
        logger.exception("could not record the error of saga run %s step %d", run_id, index)


def on_poisoned(*, row: PoisonedTask, handler: str, message: Any, error: str, **_: Any) -> None:
    """A step's task was poisoned (in the transaction that records it). An
    action whose process kept dying or ran past its hard time limit has
    failed: the saga compensates, and the poisoned row is resolved by that. A
    compensation that keeps failing leaves the run stuck, for an operator."""
    found = saga_registry.step_of_task(handler)
    payload = message.get("payload") if isinstance(message, dict) else None
    if found is None or not isinstance(payload, dict):
        return
    saga, index, phase = found
    try:
        run_id = uuid.UUID(str(payload.get("run_id")))
    except ValueError:
        return
    run = SagaRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        return
    with message_context(correlation_id=run.correlation_id, causation_id=str(row.event_id or "")):
        if phase == ACTION:
            fail_step(saga, run_id, index, error)
            PoisonedTask.objects.filter(pk=row.pk).update(
                status=PoisonStatus.RESOLVED, resolved_at=timezone.now()
            )
            return
    if run.state != RunState.COMPENSATING or run.current_step != index:
        return
    run.state = RunState.STUCK  # run.error keeps why it is compensating
    run.updated_at = timezone.now()
    run.save(update_fields=["state", "updated_at"])
    SagaStep.objects.filter(run=run, index=index).update(compensation_error=error[:ERROR_LENGTH])
    logger.error(
        "saga %s %s is stuck: undoing %s failed: %s",
        saga.name, run_id, saga.steps[index].step_name, error,
    )  # fmt: skip


def _on_saga_registered(*, saga: type[Saga], **_: Any) -> None:
    register_step_handlers(saga)


def connect() -> None:
    """Step handlers of the sagas declared so far and of those to come; the
    poisoned-step receiver (called from MediatorConfig.ready())."""
    for saga in saga_registry.all():
        register_step_handlers(saga)
    saga_registered.connect(_on_saga_registered, dispatch_uid="mediator.sagas.runner")
    delivery_poisoned.connect(on_poisoned, dispatch_uid="mediator.sagas.runner.on_poisoned")
