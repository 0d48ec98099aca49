"""Helpers for tests that run real processes: polling, worker subprocesses.

The worker and the polling are mediator.testing's (the plugin's own); this
module gives them the shop's defaults.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from celery import current_app
from django.db import connection

from mediator.testing import worker as testing_worker
from mediator.testing.waiting import wait_for
from scripts.celery_worker import APP

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["ROOT", "Worker", "database_url_for_subprocess", "flash", "subprocess_env", "wait_for"]


def flash(response: object) -> list[str]:
    """The messages framework's messages a response carries."""
    from django.contrib.messages import get_messages

    return [str(m) for m in get_messages(response.wsgi_request)]  # type: ignore[attr-defined]


def database_url_for_subprocess() -> str:
    """The URL of the database this test process uses (the test database)."""
    d = connection.settings_dict
    if d["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{d['NAME']}"
    auth = quote(d["USER"] or "", safe="")
    if d["PASSWORD"]:
        auth += ":" + quote(d["PASSWORD"], safe="")
    host = d["HOST"] or "127.0.0.1"
    port = f":{d['PORT']}" if d["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{d['NAME']}"


def subprocess_env(broker_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url_for_subprocess(),
        REDIS_URL=broker_url,
        CELERY_BROKER_URL=broker_url,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Worker(testing_worker.Worker):
    """A real `celery worker` of the shop's app, started from the repository."""

    def __init__(
        self,
        *,
        broker_url: str,
        log_dir: Path,
        concurrency: int = 2,
        queues: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            broker_url=broker_url,
            log_dir=log_dir,
            app=APP,
            concurrency=concurrency,
            queues=queues,
            cwd=ROOT,
            # What the shop's settings read (the database as a URL, for its
            # checks and scripts): the same values the worker is given anyway.
            env={
                "REDIS_URL": broker_url,
                "DATABASE_URL": database_url_for_subprocess(),
                **(env or {}),
            },
        )


@contextmanager
def celery_tasks_forgotten() -> Iterator[None]:
    """The isolated registries forget the handlers; this forgets their Celery
    tasks. Celery keeps the first task registered under a name, whose closure
    holds its handler: a later example's handler of that name would never run."""
    before = set(current_app.tasks)
    try:
        yield
    finally:
        for name in set(current_app.tasks) - before:
            current_app.tasks.pop(name, None)
