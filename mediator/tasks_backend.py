"""Django's tasks API on the mediator's delivery path (docs/tasks-backend.md).

    TASKS = {"default": {"BACKEND": "mediator.tasks_backend.MediatorBackend"}}

A `@task` function becomes what a handler is: a command class of its own (type
name "task:<module>.<function>", payload its JSON args and kwargs), handled by
one `@handles` handler named after the function, whose Celery task the worker
layer builds as it builds any handler's. `enqueue()` writes that command to the
outbox in the caller's transaction, so a task runs if and only if the
transaction commits, once (inbox), retried with backoff, poisoned in the admin
when it keeps failing; even when the broker or the process dies at commit.

The result id is the message id, and `get_result()` reads the mediator's own
records: the inbox record (SUCCESSFUL), the poisoned row (FAILED), the
progress row (RUNNING, or READY while a retry waits) and the outbox row (READY).
Return values are not kept.

Needs the `django-tasks` backport (the `tasks` extra); the rest of the
mediator does not.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

try:
    from django_tasks import TaskContext, TaskResult, TaskResultStatus
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import DEFAULT_TASK_QUEUE_NAME, Task, TaskError
    from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued
    from django_tasks.utils import normalize_json
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImproperlyConfigured(
        "mediator.tasks_backend.MediatorBackend needs the django-tasks package: "
        "pip install 'django-durable-mediator[tasks]'"
    ) from exc
from pydantic import Field
from typing_extensions import ParamSpec

from mediator.delivery.dispatch import delivery_task_id
from mediator.delivery.models import (
    DeliveryProgress,
    InboxRecord,
    OutboxMessage,
    PoisonedTask,
    PoisonStatus,
    ProgressState,
)
from mediator.delivery.outbox import write_to_outbox
from mediator.handlers.pipeline import current_handler_context
from mediator.handlers.registry import HandlerRegistry, handler_registry, handles
from mediator.messages.base import Command

logger = logging.getLogger("mediator.tasks")

P = ParamSpec("P")
T = TypeVar("T")

TYPE_PREFIX = "task:"  # a task's message type is "task:" + the function's dotted path


class TaskMessage(Command):
    """What an enqueued task travels as: its arguments, as JSON."""

    abstract: ClassVar[bool] = True

    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediatorTask(Task[P, T]):
    """The backend's `Task`: `@task` takes a handler's delivery options too,
    `@task(max_retries=3, retry_on=(SMTPException,))`; left out, they come
    from MEDIATOR as they do for `@handles` (mediator.handlers.registry)."""

    max_retries: int | None = None
    backoff: float | None = None
    backoff_max: float | None = None
    jitter: bool | None = None
    retry_on: tuple[type[BaseException], ...] | None = None
    poison_on: tuple[type[BaseException], ...] = ()
    rate_limit: str | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None
    atomic: bool = True
    breaker: str | bool = False


@dataclass
class RegisteredTask:
    task: Task[Any, Any]  # as declared (not a `using()` copy)
    message: type[TaskMessage]
    queue: str | None  # the Celery queue (None: MEDIATOR["QUEUE"], else Celery's default)


class TaskRegistry:
    """Tasks declared with this backend, by the handler name they run under.

    A task is registered when django-tasks validates it (at `@task`), as a
    command class and its one handler; a handler registry that forgot it (a
    test's isolated() block ended) gets it again on the next validation.
    """

    def __init__(self, handlers: HandlerRegistry = handler_registry) -> None:
        self._tasks: dict[str, RegisteredTask] = {}
        self._handlers = handlers

    def register(self, task: Task[Any, Any], queue: str | None) -> RegisteredTask:
        name = task.module_path
        entry = self._tasks.get(name)
        if entry is not None and entry.task.func is task.func:
            if entry.queue != queue:
                raise InvalidTaskError(
                    f"{name} runs on the Celery queue {entry.queue or 'default'!r}, set by "
                    "@task(queue_name=...): MediatorBackend routes per task function, as it "
                    "routes handlers, so using(queue_name=...) cannot move one run."
                )
            if self._handlers.get(name) is not None:
                return entry  # a using() copy, or the same declaration again
        if entry is None or entry.task.func is not task.func:
            entry = RegisteredTask(task=task, message=_message_class(name, task), queue=queue)
            self._tasks[name] = entry
        _register_handler(entry, name, self._handlers)
        return entry

    def get(self, name: str) -> RegisteredTask | None:
        return self._tasks.get(name)

    def all(self) -> list[RegisteredTask]:
        return list(self._tasks.values())

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """Tasks declared inside the block are forgotten after it (tests)."""
        saved = dict(self._tasks)
        try:
            yield
        finally:
            self._tasks = saved


def _message_class(name: str, task: Task[Any, Any]) -> type[TaskMessage]:
    func = task.func
    return type(
        f"{func.__name__}_task",
        (TaskMessage,),
        {
            "__module__": func.__module__,
            "__qualname__": f"{func.__qualname__}_task",
            "__doc__": f"The enqueued runs of the task {name}.",
            "event_type": TYPE_PREFIX + name,
        },
    )


def _register_handler(entry: RegisteredTask, name: str, handlers: HandlerRegistry) -> None:
    task = entry.task

    def option(key: str) -> Any:
        return getattr(task, key, None)

    handles(
        entry.message,
        name=name,
        max_retries=option("max_retries"),
        backoff=option("backoff"),
        backoff_max=option("backoff_max"),
        jitter=option("jitter"),
        retry_on=option("retry_on"),
        poison_on=option("poison_on") or (),
        queue=entry.queue,
        rate_limit=option("rate_limit"),
        soft_time_limit=option("soft_time_limit"),
        time_limit=option("time_limit"),
        atomic=getattr(task, "atomic", True),
        breaker=option("breaker") or False,
        registry=handlers,
    )(_runner(entry))


def _runner(entry: RegisteredTask) -> Callable[[TaskMessage], None]:
    """The handler of a task's messages: call the function with the message's
    arguments. It runs in the inbox transaction like any handler; what it
    returns is discarded."""
    task = entry.task

    def run(message: TaskMessage) -> None:
        if task.takes_context:
            context = current_handler_context()
            now = timezone.now()
            result: TaskResult[Any] = TaskResult(
                task=task,
                id=str(context.message_id),
                status=TaskResultStatus.RUNNING,
                enqueued_at=None,
                started_at=now,
                last_attempted_at=now,
                finished_at=None,
                args=message.args,
                kwargs=message.kwargs,
                backend=task.backend,
                errors=[],
                # TaskContext.attempt counts these: the Celery task id once per attempt.
                worker_ids=[delivery_task_id(context.message_id, context.handler)]
                * context.attempt,
            )
            task.call(TaskContext(task_result=result), *message.args, **message.kwargs)
        else:
            task.call(*message.args, **message.kwargs)

    run.__module__ = task.func.__module__
    run.__name__ = run.__qualname__ = task.func.__name__
    run.__doc__ = task.func.__doc__
    return run


task_registry = TaskRegistry()


class MediatorBackend(BaseTaskBackend):
    """Tasks run by the mediator: outbox, one Celery task per function, inbox,
    retries with backoff, poisoned rows. OPTIONS take nothing yet; QUEUES
    lists the queue names `@task(queue_name=...)` may use, each a Celery
    queue of that name ("default": MEDIATOR["QUEUE"], or Celery's default)."""

    task_class = MediatorTask
    supports_defer = True  # run_after: the outbox row waits, not the broker
    supports_async_task = True  # run in the worker through async_to_sync
    supports_get_result = True  # from the mediator's tables, in any process
    supports_priority = False  # one priority: the dispatch path has no per-message option
    is_mediator_backend = True  # mediator.wiring imports every app's tasks.py

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        unknown = set(self.options)
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] has keys {sorted(unknown)}; "
                "MediatorBackend takes none (delivery options are MEDIATOR's, or @task's)."
            )

    def validate_task(self, task: Task[Any, Any]) -> None:
        super().validate_task(task)
        task_registry.register(task, celery_queue(task.queue_name))

    def enqueue(
        self,
        task: Task[P, T],
        args: P.args,  # type: ignore[valid-type]
        kwargs: P.kwargs,  # type: ignore[valid-type]
    ) -> TaskResult[T]:
        """Write the run to the outbox in the caller's transaction (outside
        one, in a transaction of its own) and return its READY result."""
        self.validate_task(task)
        entry = task_registry.get(task.module_path)
        assert entry is not None  # validate_task registered it
        message = entry.message(args=normalize_json(args), kwargs=normalize_json(kwargs))
        now = timezone.now()
        not_before = task.run_after if task.run_after and task.run_after > now else None
        if connection.in_atomic_block:
            event_id = write_to_outbox(message, "enqueue", not_before=not_before)
        else:  # autocommit: the row commits on its own, and is sent right after
            with transaction.atomic():
                event_id = write_to_outbox(message, "enqueue", not_before=not_before)
        result: TaskResult[T] = TaskResult(
            task=task,
            id=str(event_id),
            status=TaskResultStatus.READY,
            enqueued_at=now,
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=message.args,
            kwargs=message.kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        # Enqueued is what the commit makes it: a rollback sends no signal.
        transaction.on_commit(lambda: task_enqueued.send_robust(type(self), task_result=result))
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """Where the run stands, from the mediator's records of its delivery.
        A result is found as long as its outbox row is kept (MEDIATOR["RETENTION"])."""
        try:
            event_id = uuid.UUID(str(result_id))
        except ValueError:
            raise TaskResultDoesNotExist(result_id) from None
        row = (
            OutboxMessage.objects.filter(event_id=event_id, event_type__startswith=TYPE_PREFIX)
            .only("event_type", "payload", "occurred_at")
            .first()
        )
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        name = row.event_type.removeprefix(TYPE_PREFIX)
        return result_of(
            task_named(name),
            result_id=str(event_id),
            backend=self.alias,
            payload=row.payload if isinstance(row.payload, dict) else {},
            enqueued_at=row.occurred_at,
            state=delivery_state(event_id, name),
        )

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        for entry in task_registry.all():
            module = entry.task.func.__module__
            if module.rsplit(".", 1)[-1] != "tasks":
                yield checks.Warning(
                    f"The task {entry.task.module_path} is declared in {module}, not in an "
                    "app's tasks module: the relay and the workers may not have imported it, "
                    "and cannot run or send it.",
                    hint="Declare MediatorBackend tasks in an installed app's tasks.py.",
                    obj=entry.task.module_path,
                    id="mediator.W004",
                )


def celery_queue(queue_name: str) -> str | None:
    """The Celery queue of a django-tasks queue name."""
    return None if queue_name == DEFAULT_TASK_QUEUE_NAME else queue_name


def task_named(name: str) -> Task[Any, Any]:
    """The declared task a handler name stands for (importing its module if
    this process has not)."""
    entry = task_registry.get(name)
    if entry is None:
        try:
            import_string(name)
        except ImportError:
            raise TaskResultDoesNotExist(f"{name} is no longer a task") from None
        entry = task_registry.get(name)
    if entry is None:
        raise TaskResultDoesNotExist(f"{name} is not a MediatorBackend task")
    return entry.task


@dataclass(frozen=True)
class DeliveryState:
    """What the mediator's records say of one (message, handler) delivery."""

    done: InboxRecord | None
    poisoned: PoisonedTask | None  # poisoned or discarded: failed for good
    progress: DeliveryProgress | None


def delivery_state(event_id: uuid.UUID, handler: str) -> DeliveryState:
    key = {"event_id": event_id, "handler": handler}
    return DeliveryState(
        done=InboxRecord.objects.filter(**key).first(),
        poisoned=PoisonedTask.objects.filter(
            **key, status__in=[PoisonStatus.POISONED, PoisonStatus.DISCARDED]
        ).first(),
        progress=DeliveryProgress.objects.filter(**key).first(),
    )


def result_of(
    task: Task[Any, Any],
    *,
    result_id: str,
    backend: str,
    payload: dict[str, Any],
    enqueued_at: datetime,
    state: DeliveryState,
) -> TaskResult[Any]:
    """The TaskResult of a delivery's records. `worker_ids` holds the Celery
    task id once per attempt the records know of (so `attempts` counts them);
    a run that succeeded records no count, and shows one."""
    task_id = delivery_task_id(result_id, task.module_path)
    status = TaskResultStatus.READY
    started = attempted = finished = None
    attempts = 0
    errors: list[TaskError] = []
    if state.done is not None:
        status, finished, attempts = TaskResultStatus.SUCCESSFUL, state.done.handled_at, 1
        if state.progress is not None:
            attempts = max(attempts, state.progress.attempt)
    elif state.poisoned is not None:
        row = state.poisoned
        status, attempts = TaskResultStatus.FAILED, row.attempts
        started, attempted, finished = row.first_failed_at, row.last_failed_at, row.last_failed_at
        errors = [TaskError(exception_class_path=exception_path(row), traceback=row.traceback)]
    elif state.progress is not None:
        progress = state.progress
        attempts, attempted = progress.attempt, progress.updated_at
        if progress.state == ProgressState.RUNNING:
            status, started = TaskResultStatus.RUNNING, progress.updated_at
        # Retrying: READY to run again. Its error is left out: the progress
        # row keeps the exception's name, not the path TaskError needs.
    args = payload.get("args", [])
    kwargs = payload.get("kwargs", {})
    return TaskResult(
        task=task,
        id=result_id,
        status=status,
        enqueued_at=enqueued_at,
        started_at=started,
        last_attempted_at=attempted,
        finished_at=finished,
        args=args if isinstance(args, list) else [],
        kwargs=kwargs if isinstance(kwargs, dict) else {},
        backend=backend,
        errors=errors,
        worker_ids=[task_id] * attempts,
    )


def exception_path(row: PoisonedTask) -> str:
    """The dotted path of the exception that poisoned the row: the last line
    of its traceback names it ("mediator.exceptions.RetryableError: ...")."""
    lines = [line for line in row.traceback.splitlines() if line.strip()]
    return _path_of(lines[-1] if lines and not lines[-1].startswith(" ") else row.exception)


def _path_of(described: str) -> str:
    name = described.split(":", 1)[0].strip()
    return name if "." in name else f"builtins.{name}"
