"""The mediator's pytest plugin, loaded by installing the package (entry
point `pytest11`). docs/testing.md shows it in use.

Fixtures:

  mediator_outbox        what the test wrote to the outbox, as typed messages,
                         with assertions, capture() for a block and deliver()
  mediator_deliver       deliver(message) for messages the test builds itself
  mediator_redis         a real redis-server on a free loopback port (session);
                         this process's Celery app publishes to it
  mediator_worker        a real `celery worker` on it, on the test database
                         (session-wide; the test gets transactional_db and
                         waits for its deliveries to settle)
  mediator_start_worker  start(**options) for more workers, stopped after the test

The first two need pytest-django's `db` (they ask for it; `transactional_db`
works as well); the end-to-end ones start only when a test asks for them.
Nothing of Django or Celery is imported before a fixture runs: a project that
does not use them pays nothing, and Django is set up by then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Neither imports Django, Celery or the rest of the mediator.
from mediator.testing.redis_server import RedisServer
from mediator.testing.worker import Worker

if TYPE_CHECKING:
    from mediator.testing.outbox import Deliveries, Outbox

# The fixtures below import outbox, settle and broker when they run, not here:
# pytest loads this plugin before Django's settings and app registry exist
# (those modules import models and Celery), and a project that never asks for
# a fixture must not pay for them. It is the load order, not an import cycle.


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "mediator_celery_app",
        "The Celery app end-to-end workers run (`celery -A`); default: the current app's module.",
        default="",
    )
    parser.addini(
        "mediator_worker_concurrency",
        "Pool processes of the session's end-to-end worker (mediator_worker).",
        default="1",
    )


@pytest.fixture
def mediator_outbox(db: None) -> Outbox:
    """Everything written to the outbox from now on (publish, send_after_commit,
    saga steps), as typed messages in order. Nothing for a rolled-back block."""
    from mediator.testing.outbox import Outbox

    return Outbox.from_now()


@pytest.fixture
def mediator_deliver(db: None) -> Callable[..., Deliveries]:
    """deliver(message, handler=None): the message through the real delivery
    path, in this process, to each subscribed handler."""
    from mediator.testing.outbox import deliver

    return deliver


@pytest.fixture(scope="session")
def mediator_redis() -> Iterator[RedisServer]:
    """A real redis-server for the session; this process's Celery app (and its
    circuit breakers) use it as the broker until the session ends."""
    from mediator.testing.broker import using_broker

    server = RedisServer().start()
    try:
        with using_broker(server.url):
            yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mediator_worker_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the end-to-end workers write their logs."""
    return tmp_path_factory.mktemp("mediator-workers")


def _worker_options(config: pytest.Config) -> dict[str, Any]:
    return {"app": str(config.getini("mediator_celery_app")) or None}


@pytest.fixture(scope="session")
def mediator_session_worker(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    mediator_redis: RedisServer,
    mediator_worker_logs: Path,
) -> Iterator[Worker]:
    """The session's shared worker, started by the first test that asks for
    mediator_worker. Use mediator_worker in tests: it also makes their data
    visible to the worker and waits for the deliveries to settle."""
    worker = Worker(
        broker_url=mediator_redis.url,
        log_dir=mediator_worker_logs,
        concurrency=int(request.config.getini("mediator_worker_concurrency")),
        **_worker_options(request.config),
    )
    try:
        yield worker.wait_ready()
    finally:
        worker.stop()


@pytest.fixture
def mediator_worker(transactional_db: None, mediator_session_worker: Worker) -> Iterator[Worker]:
    """A real worker delivering what this test commits. The test runs with
    transactional_db (the worker sees only committed rows); after it, every
    delivery it dispatched is waited for (done or poisoned) before the
    database is flushed."""
    from mediator.testing.settle import settle

    yield mediator_session_worker
    settle()


@pytest.fixture
def mediator_start_worker(
    transactional_db: None,
    mediator_redis: RedisServer,
    mediator_worker_logs: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Worker]]:
    """start(concurrency=1, queues=None, env=None, ...) -> a ready worker of
    its own for this test; all of them are stopped after it, once what the
    test dispatched has settled."""
    from mediator.testing.settle import settle

    started: list[Worker] = []

    def start(**options: Any) -> Worker:
        options.setdefault("broker_url", mediator_redis.url)
        options.setdefault("concurrency", 1)
        for key, value in _worker_options(request.config).items():
            options.setdefault(key, value)
        worker = Worker(log_dir=mediator_worker_logs, **options)
        started.append(worker)
        return worker.wait_ready()

    try:
        yield start
        if started:
            settle()
    finally:
        for worker in started:
            worker.stop()
