"""Database connections in a worker: kept across tasks, as CONN_MAX_AGE says.

Celery's Django fixup closes every connection before and after each task (a
fresh connect per task: ~6.6 ms on PostgreSQL, most of a short handler's
cost). Celery 5.6 reverted its CONN_MAX_AGE support (celery#9824) because
`close_if_unusable_or_obsolete` misses a connection broken by a time-limit
interrupt. So this module takes over the per-task part of the fixup and
treats each task as Django treats a request, plus what a task needs:

- before a task: `close_if_unusable_or_obsolete()` (CONN_MAX_AGE honoured;
  0 closes every task, as Celery does), and a connection the server has
  hung up on is closed so the task reconnects. On PostgreSQL that is seen
  without a round trip: an idle connection whose socket is readable has been
  sent a termination notice or EOF (a restart, `pg_terminate_backend`, an
  idle timeout); Django's `SELECT 1` health check is then not needed.
- after a task: a connection left inside a transaction is rolled back and
  closed (nothing leaks into the next task), and after a task that failed
  (a time limit can interrupt a query half-way) every connection is closed.

Eager runs and `apply()` are left alone, as the fixup leaves them. The
fixup still closes what a pool process inherited at fork.
"""

from __future__ import annotations

import select
from typing import Any

from celery import Celery, Task, signals
from celery.fixups.django import DjangoFixup
from django.core.cache import close_caches
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

SUCCEEDED = "SUCCESS"


def before_task(task: Task | None = None, **_: Any) -> None:
    if _eager(task):
        return
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if hung_up(conn):
            conn.close()
            continue
        conn.close_if_unusable_or_obsolete()
        if conn.connection is not None and conn.vendor == "postgresql":
            # Seen alive above, without a query: Django's SELECT 1 is not needed.
            conn.health_check_done = True  # type: ignore[attr-defined]


def after_task(task: Task | None = None, state: str | None = None, **_: Any) -> None:
    if _eager(task):
        return
    close_caches()
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if state != SUCCEEDED or conn.in_atomic_block or not conn.get_autocommit():
            close(conn)
        else:
            conn.close_if_unusable_or_obsolete()


def _eager(task: Task | None) -> bool:
    """apply() and eager tasks run inside the caller's connection and transaction."""
    return task is None or bool(getattr(task.request, "is_eager", False))


def hung_up(conn: BaseDatabaseWrapper) -> bool:
    """The server closed this idle PostgreSQL connection (or it is broken)."""
    if conn.vendor != "postgresql":
        return False
    raw = conn.connection
    if getattr(raw, "closed", False) or getattr(raw, "broken", False):
        return True
    if conn.in_atomic_block:
        return False  # a task never starts inside one; leave it to after_task
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def close(conn: BaseDatabaseWrapper) -> None:
    """Close, whatever state the connection was left in."""
    conn.in_atomic_block = False  # a task cannot be inside Django's atomic() any more
    conn.needs_rollback = False
    try:
        conn.close()
    except Exception:
        conn.connection = None  # broken beyond closing: drop it


def take_over(app: Celery) -> None:
    """Replace the Django fixup's close-per-task with before_task/after_task."""
    for fixup in getattr(app, "_fixups", []):
        if isinstance(fixup, DjangoFixup):
            worker_fixup = fixup.worker_fixup
            signals.task_prerun.disconnect(worker_fixup.on_task_prerun)
            signals.task_postrun.disconnect(worker_fixup.on_task_postrun)
    signals.task_prerun.connect(before_task, weak=False, dispatch_uid="mediator.connections")
    signals.task_postrun.connect(after_task, weak=False, dispatch_uid="mediator.connections")
