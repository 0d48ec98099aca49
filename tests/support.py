"""Helpers for tests that run real processes: polling, worker subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import quote

from django.db import connection

from scripts.celery_worker import worker_argv

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | Literal[False] | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll until predicate() is truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


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


class Worker:
    """A real `celery worker` process (prefork pool) in its own process group."""

    def __init__(
        self,
        *,
        broker_url: str,
        log_dir: Path,
        concurrency: int = 2,
        queues: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.log_path = log_dir / f"worker-{self.name.split('@')[0]}.log"
        argv = [*worker_argv(name=self.name, concurrency=concurrency), "-E"]
        if queues:
            argv += ["-Q", queues]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=subprocess_env(broker_url, **(env or {})),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> Worker:
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
