from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from mediator.testing.redis_server import RedisServer
from tests.support import Worker

pytest_plugins = ["pytester"]  # tests/mediator/test_testing_plugin.py


@pytest.fixture(scope="session", autouse=True)
def redis_server(mediator_redis: RedisServer) -> RedisServer:
    """The plugin's real redis-server (mediator.testing), for the whole session:
    the shop's breakers, health checks and payment provider use it too.

    Fails (never skips) when no redis-server can be found.
    """
    os.environ["REDIS_URL"] = mediator_redis.url
    settings.REDIS_URL = settings.CELERY_BROKER_URL = mediator_redis.url
    return mediator_redis


@pytest.fixture(scope="session", autouse=True)
def prometheus_dir() -> Iterator[Path]:
    """The multiprocess metrics directory tests/settings.py made for this session."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    yield path
    if path.name.startswith("mediator-test-metrics-"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def worker_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workers")


_session_worker: list[Worker] = []  # the shared worker, once a test has started it


def _commits(request: pytest.FixtureRequest) -> bool:
    """Does this test commit (and so dispatch), and end with a TRUNCATE?"""
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(marker and marker.kwargs.get("transaction"))
    return transactional or {"transactional_db", "live_server"} & set(request.fixturenames) != set()


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None, django_db_blocker: Any, redis_server: RedisServer, worker_logs: Path
) -> Iterator[Worker]:
    """One real `celery worker` (prefork, 2 processes) shared by the session."""
    with django_db_blocker.unblock():
        worker = Worker(
            broker_url=redis_server.url,
            log_dir=worker_logs,
            # Traced, so the tracing test can follow a request into the worker
            # (and every delivery test runs with tracing on in the worker).
            env={
                "OTEL_TRACES_EXPORTER": "tests.testapp.spans.JsonLinesExporter",
                "OTEL_SERVICE_NAME": "test-worker",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "SPAN_FILE": str(worker_logs / "spans.jsonl"),
            },
        )
    _session_worker.append(worker)
    try:
        yield worker.wait_ready()
    finally:
        _session_worker.clear()
        worker.stop()


@pytest.fixture
def start_worker(
    django_db_setup: None, redis_server: RedisServer, worker_logs: Path
) -> Iterator[Callable[..., Worker]]:
    """Start extra workers for one test (e.g. with other settings); all stopped after it."""
    started: list[Worker] = []

    def start(**kwargs: Any) -> Worker:
        kwargs.setdefault("broker_url", redis_server.url)
        worker = Worker(log_dir=worker_logs, **kwargs)
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(autouse=True)
def settle_deliveries(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that ran a worker, or committed while one was running, wait
    until every event it dispatched has settled (done or poisoned for each
    handler) before the database is flushed: truncating tables under a running
    handler would deadlock on PostgreSQL."""
    yield
    # The session worker, once started, also runs what tests that did not ask
    # for it dispatch; their flush must wait for it as well.
    if "celery_worker" not in request.fixturenames and not (_session_worker and _commits(request)):
        return
    from mediator.testing.settle import settle

    # EmailQueued rows are pending only until the handler that published
    # them has committed; other pending rows are a test's own (the relay's).
    settle(timeout=60, pending_types=["notifications.EmailQueued"])
