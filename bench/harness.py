"""What every scenario needs: worker processes, waiting with a deadline,
clearing state between runs, and summarising samples."""

from __future__ import annotations

import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

from scripts.celery_worker import worker_argv

ROOT = Path(__file__).resolve().parent.parent
Figure = dict[str, float]


def summarise(samples: list[float]) -> Figure:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Process:
    """A child process in its own session, logging to a file; stop() ends
    the whole group, so no pool child outlives the benchmark."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


class Worker(Process):
    """One prefork worker, 2 processes, acks late, prefetch 1: the project's settings."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        stamp = time.monotonic_ns()
        super().__init__(
            worker_argv(name=f"bench-{os.getpid()}-{stamp}@%h", loglevel="WARNING"),
            env,
            workdir / f"worker-{stamp}.log",
        )

    def rss_bytes(self) -> int:
        """Resident memory of the main process and its pool children."""
        main = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)])

    def cpu_seconds(self) -> float:
        """CPU time the main process and its pool children have used so far."""
        main = psutil.Process(self.process.pid)
        times = [p.cpu_times() for p in [main, *main.children(recursive=True)]]
        return sum(t.user + t.system for t in times)


def relay_argv(*extra: str) -> list[str]:
    return [sys.executable, "manage.py", "relay_outbox", *extra]


def is_amqp(broker_url: str) -> bool:
    return broker_url.startswith(("amqp", "pyamqp"))


def clear(redis_url: str) -> None:
    """Empty the broker and every table a scenario writes."""
    import redis

    from bench.models import Counter, LatencySample, RawRun
    from mediator.models import DeliveryProgress, InboxRecord, OutboxMessage, PoisonedTask

    redis.Redis.from_url(redis_url).flushdb()
    if is_amqp(broker := os.environ.get("CELERY_BROKER_URL", "")):
        from kombu import Connection

        with Connection(broker) as conn:
            for queue in ("celery",):
                try:
                    channel: Any = conn.default_channel
                    channel.queue_purge(queue)
                except conn.channel_errors:  # not declared yet
                    conn.close()
    for model in (
        RawRun, LatencySample, InboxRecord, DeliveryProgress, PoisonedTask, OutboxMessage, Counter,
    ):  # fmt: skip
        model.objects.all().delete()


def check_no_poison() -> None:
    from mediator.models import PoisonedTask

    poisoned = list(PoisonedTask.objects.values_list("handler", "exception")[:3])
    if poisoned:
        raise RuntimeError(f"benchmark deliveries were poisoned: {poisoned}")


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{name: version(name) for name in ("django", "celery", "kombu", "redis", "psycopg")},
        "redis_server": _server_version(["redis-server", "--version"]),
        "database_server": _database_version(),
    }


def _server_version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError as exc:
        return f"unknown ({exc})"


def _database_version() -> str:
    from django.db import connection

    if connection.vendor == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        return str(cursor.fetchone()[0])
