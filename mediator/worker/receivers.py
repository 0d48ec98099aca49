"""Celery signals the worker listens to, connected in MediatorConfig.ready().

Two failures never reach run_delivery's decision: a pool process that died
(after retry_on_worker_lost ran out) and a hard time limit; and a message for
a handler task this worker does not have is dropped by Celery. Each is kept
as a poisoned delivery here. And the worker keeps its database connections
across tasks (mediator.worker.connections).
"""

from __future__ import annotations

from typing import Any

from celery import Task, current_app
from celery.exceptions import Retry
from celery.signals import task_failure, task_unknown, worker_init

from mediator.delivery import poison
from mediator.exceptions import HandlerPoisoned, UnknownHandler
from mediator.handlers.registry import handler_registry
from mediator.worker import connections


def _warm_up_poison_records(**_: Any) -> None:
    poison.ForkGuard.warm_up()


def _keep_connections(sender: Any = None, **_: Any) -> None:
    # Runs after the Django fixup's own worker_init receiver (connected when
    # the Celery app was made), so the per-task closes it installs are there
    # to be replaced.
    connections.take_over(sender.app if sender is not None else current_app)


def _poison_lost_or_timed_out(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """A pool process that died (WorkerLostError) or a hard time limit.
    Celery calls only this signal for them, in the main process."""
    spec = handler_registry.get(getattr(sender, "name", "") or "")
    if spec is None or sender is None or isinstance(exception, HandlerPoisoned | Retry):
        return
    retries = getattr(sender.request, "retries", 0) or 0
    poison.record_in_background(
        only_if_not_done=True,
        handler=spec.name,
        message=args[0] if args else None,
        exception=exception or RuntimeError("unknown failure"),
        traceback_text=str(einfo or ""),
        attempts=retries + 1,
        task_id=task_id or "",
    )


def _poison_unknown_handler(
    message: Any = None, name: str | None = None, id: str | None = None, **_: Any
) -> None:
    """A message for a handler task this worker does not have (renamed or
    removed since it was published). Celery drops it; we keep it, poisoned."""
    try:
        args = message.decode()[0] if message is not None else []
    except Exception:
        args = []
    envelope = args[0] if args and isinstance(args[0], dict) else None
    if envelope is None or "event_type" not in envelope:
        return  # not one of ours
    poison.record_in_background(
        handler=name or "?",
        message=envelope,
        exception=UnknownHandler(f"No handler task named {name!r} is registered in this worker."),
        traceback_text="",
        attempts=1,
        task_id=id or "",
    )


def connect() -> None:
    worker_init.connect(_warm_up_poison_records, weak=False)
    worker_init.connect(_keep_connections, weak=False)
    task_failure.connect(_poison_lost_or_timed_out, weak=False)
    task_unknown.connect(_poison_unknown_handler, weak=False)
