"""Workers keep their database connections across tasks (CONN_MAX_AGE), and
a connection that is broken, or that a failed task may have left in any
state, is replaced before the next task uses it. Real workers, real database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from celery import current_app
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from mediator import publish
from mediator.messages.envelope import Envelope
from mediator.models import DeliveryProgress, InboxRecord, ProgressState
from tests.mediator.helpers import FLAKY, RECORD, handled, new_key, publish_ping, redis_list, store
from tests.support import Worker, wait_for
from tests.testapp.events import Noted, Pinged

NOTE = "tests.testapp.handlers.note_connection"
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a server that drops connections: PostgreSQL"
)


@pytest.fixture
def noting_worker(start_worker: Callable[..., Worker]) -> Callable[..., Worker]:
    """A one-process worker for the handler's own queue, with these environment variables."""
    return lambda **env: start_worker(concurrency=1, queues="connections", env=env)


def run_noted(key: str, mode: str = "ok") -> None:
    """Publish one Noted event and wait until its handler is done."""
    with transaction.atomic():
        event_id = publish(Noted(key=key, mode=mode))
    wait_for(lambda: handled(event_id, NOTE), timeout=30, message=f"{NOTE} of {event_id}")


def connections_used(key: str) -> list[tuple[str, str, str]]:
    """(pool pid, connection token, backend pid) of each run of the handler."""
    return [tuple(line.split()) for line in redis_list(f"connections:{key}")]  # type: ignore[misc]


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_across_tasks(
    noting_worker: Callable[..., Worker],
) -> None:
    noting_worker()
    key = new_key()
    for _ in range(4):
        run_noted(key)
    used = connections_used(key)
    assert len(used) == 4
    assert len({pid for pid, _, _ in used}) == 1
    assert len({token for _, token, _ in used}) == 1, used


@pytest.mark.django_db(transaction=True)
def test_conn_max_age_0_gives_each_task_a_new_connection(
    noting_worker: Callable[..., Worker],
) -> None:
    noting_worker(DATABASE_CONN_MAX_AGE="0")
    key = new_key()
    for _ in range(3):
        run_noted(key)
    used = connections_used(key)
    assert len(used) == 3
    assert len({token for _, token, _ in used}) == 3, used


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_before_the_next_task_uses_it(
    noting_worker: Callable[..., Worker],
) -> None:
    noting_worker()
    key = new_key()
    run_noted(key)
    backend = int(connections_used(key)[0][2])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])

    def gone() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend])
            return cursor.fetchone()[0] == 0

    wait_for(gone, timeout=10, message=f"backend {backend} to end")
    with transaction.atomic():
        event_id = publish(Noted(key=key))
    wait_for(lambda: handled(event_id, NOTE), timeout=30, message="the second run")
    used = connections_used(key)
    assert len(used) == 2
    assert int(used[1][2]) != backend
    # First try: no failed attempt was recorded on the way.
    assert not DeliveryProgress.objects.filter(event_id=event_id).exists()


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_failed_task_leaves_no_connection_to_the_next(
    noting_worker: Callable[..., Worker],
) -> None:
    noting_worker()
    key = new_key()
    run_noted(key, mode="fail")  # attempt 1 fails, attempt 2 succeeds
    used = connections_used(key)
    assert len(used) == 2
    assert used[0][2] != used[1][2], used


@pytest.mark.django_db(transaction=True)
def test_a_slow_run_shows_running_and_a_quick_one_writes_no_progress_row(
    celery_worker: Worker,
) -> None:
    event_id, key = publish_ping(mode="block")
    wait_for(lambda: redis_list(f"started:{key}"), timeout=30, message="the slow run to start")

    def running() -> DeliveryProgress | None:
        return DeliveryProgress.objects.filter(
            event_id=event_id, handler=FLAKY, state=ProgressState.RUNNING
        ).first()

    row = wait_for(running, timeout=10, message="the slow run to be recorded as running")
    assert row.attempt == 1
    store().rpush(f"release:{key}", 1)
    wait_for(lambda: handled(event_id, FLAKY), timeout=30, message="the slow run to end")

    quick, _ = publish_ping()
    wait_for(
        lambda: handled(quick, RECORD) and handled(quick, FLAKY), timeout=30, message="quick runs"
    )
    # SQLite has one writer: there every run is recorded before its transaction.
    quick_rows = DeliveryProgress.objects.filter(event_id=quick).count()
    assert quick_rows == (2 if connection.vendor == "sqlite" else 0)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite records every run as running first"
)
@pytest.mark.django_db
def test_a_delivery_costs_one_query_beyond_the_handlers_own(settings: Any) -> None:
    """The inbox claim, then the handler's INSERT; BEGIN and COMMIT around them.
    No progress write, no SELECT. (In-process apply(): this counts queries.
    SQLite writes "running" first, see mediator.worker.slow_runs.)"""
    envelope = Envelope.wrap(Pinged(key=new_key()), correlation_id=None, causation_id=None)
    task = current_app.tasks[RECORD]
    with CaptureQueriesContext(connection) as queries:
        assert task.apply(args=(envelope.to_message(),)).get() == "done"
    statements = [q["sql"] for q in queries.captured_queries]
    inbox = InboxRecord._meta.db_table
    ours = [sql for sql in statements if "SAVEPOINT" not in sql]
    assert len(ours) == 2, statements
    assert ours[0].startswith(f'INSERT INTO "{inbox}"') or ours[0].startswith(
        f"INSERT INTO {inbox}"
    ), ours[0]
    assert "testapp_effect" in ours[1]
