"""The Celery task of each handler, built from the handler registry.

MediatorConfig.ready() builds a task for every handler registered by then
and connects `handler_registered`, so a handler registered later (a test's,
a saga declared at run time) gets its task too.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from mediator.handlers.registry import HandlerRegistry, handler_registry
from mediator.handlers.spec import HandlerSpec
from mediator.signals import handler_registered
from mediator.worker.countdown import broker_countdown
from mediator.worker.run import run_delivery


def make_handler_task(spec: HandlerSpec) -> Task:
    options: dict[str, Any] = {
        "name": spec.name,
        "bind": True,
        # Ack after the run; requeue/retry when the pool process dies mid-run.
        "acks_late": True,
        "reject_on_worker_lost": True,
        # A process killed on every delivery must not loop forever: Celery 5.7
        # re-sends it as a retry, so deaths count against max_retries, and the
        # last one reaches task_failure (mediator.worker.receivers), which
        # poisons it.
        "retry_on_worker_lost": True,
        "max_retries": spec.max_retries,
        # The countdown of that re-send.
        "default_retry_delay": broker_countdown(spec.backoff),
        # The inbox and PoisonedTask tables are the record of a handler run.
        "ignore_result": True,
        "typing": False,
    }
    # The queue is applied by mediator.handlers.routing (task_routes): Celery
    # deprecates the task attribute.
    for option in ("rate_limit", "soft_time_limit", "time_limit"):
        if getattr(spec, option) is not None:
            options[option] = getattr(spec, option)

    def run(self: Task, *args: Any, **kwargs: Any) -> str:
        return run_delivery(self, spec, args, kwargs)

    run.__name__ = spec.name.rsplit(".", 1)[-1]
    run.__qualname__ = run.__name__
    run.__module__ = spec.func.__module__
    run.__doc__ = spec.func.__doc__
    return shared_task(**options)(run)


def build_task(spec: HandlerSpec) -> None:
    spec.task = make_handler_task(spec)


def _on_registered(*, spec: HandlerSpec, **_: Any) -> None:
    build_task(spec)


def connect(registry: HandlerRegistry = handler_registry) -> None:
    """Build the tasks of the handlers registered so far, and of those to come."""
    for spec in registry.all():
        if spec.task is None:
            build_task(spec)
    handler_registered.connect(_on_registered, dispatch_uid="mediator.worker.tasks")
