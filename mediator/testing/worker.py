"""A real `celery worker` process for end-to-end tests, on the test database.

The worker is a child process (prefork pool) in its own process group, so
stop() can end it and every pool process it forked, by pid. It runs the
project's own settings module; only the database names are replaced by the
test databases' (mediator.testing.worker_process), so it needs no settings
of its own and works whatever environment variables the settings read.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Self

from mediator.testing.waiting import wait_for

# The module the worker process runs: the test databases, then Celery's CLI.
LAUNCHER = "mediator.testing.worker_process"
DATABASES_ENV = "MEDIATOR_TEST_DATABASE_NAMES"


def worker_argv(
    *,
    app: str,
    name: str,
    concurrency: int = 2,
    loglevel: str = "INFO",
    launcher: str = "celery",
) -> list[str]:
    """A prefork `celery worker` for the Celery app `app` (what `-A` takes),
    without gossip or mingle, which only slow a throwaway worker's start."""
    return [
        sys.executable, "-m", launcher, "-A", app, "worker", "--pool=prefork",
        f"--concurrency={concurrency}", f"--loglevel={loglevel}", "-n", name,
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def default_app() -> str:
    """What `-A` should name: the module of this process's current Celery app."""
    from celery import current_app

    main = current_app.main
    if not main or main == "__main__":
        raise RuntimeError(
            "Cannot tell which Celery app a worker should run: the current app has no "
            "module name (Celery(main=...)). Pass app=..., or set the pytest ini option "
            "mediator_celery_app."
        )
    return str(main)


def database_names() -> dict[str, str]:
    """The database name of every connection of this (test) process."""
    from django.db import connections

    names = {}
    for alias in connections:
        connection = connections[alias]
        in_memory = getattr(connection, "is_in_memory_db", None)
        if in_memory is not None and in_memory():
            raise RuntimeError(
                f"The test database {alias!r} is an in-memory SQLite database, which a worker "
                "process cannot open: give it a file, "
                f"DATABASES[{alias!r}]['TEST'] = {{'NAME': '/tmp/tests.sqlite3'}}."
            )
        names[alias] = str(connection.settings_dict["NAME"])
    return names


def python_path() -> str:
    """This process's import path without the interpreter's own directories,
    so the worker imports the project (and test modules) the same way."""
    own = (sys.prefix, sys.base_prefix, sys.exec_prefix)
    entries = [p for p in sys.path if p and os.path.isdir(p) and not p.startswith(own)]
    inherited = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([*dict.fromkeys(entries), *([inherited] if inherited else [])])


class Worker:
    """A real `celery worker` on `broker_url` and the test databases.

    `app` is what `celery -A` takes (default: this process's current Celery
    app); `env` adds to (or overrides) the environment it inherits; its log
    goes to `log_dir`. Call wait_ready() before relying on it, stop() after.
    """

    def __init__(
        self,
        *,
        broker_url: str,
        log_dir: Path,
        app: str | None = None,
        concurrency: int = 2,
        queues: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        loglevel: str = "INFO",
    ) -> None:
        from django.conf import settings

        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.log_path = log_dir / f"worker-{self.name.split('@')[0]}.log"
        argv = worker_argv(
            app=app or default_app(),
            name=self.name,
            concurrency=concurrency,
            loglevel=loglevel,
            launcher=LAUNCHER,
        )
        argv.append("-E")  # task events: Flower and the event-watching tests see them
        if queues:
            argv += ["-Q", queues]
        environment = dict(os.environ)
        environment.update(
            DJANGO_SETTINGS_MODULE=str(settings.SETTINGS_MODULE),
            CELERY_BROKER_URL=broker_url,  # Celery prefers it to any setting
            PYTHONPATH=python_path(),
            PYTHONUNBUFFERED="1",
        )
        environment[DATABASES_ENV] = json.dumps(database_names())
        environment.update(env or {})
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv,
            cwd=cwd or Path.cwd(),
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> Self:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            return " ready." in self.log()

        wait_for(ready, timeout=timeout, message=f"worker {self.name} to be ready")
        return self

    def pool_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except FileNotFoundError:
            return []

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # any pool child left behind
        self.process.wait(5)
        self._log.close()
