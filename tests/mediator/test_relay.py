"""The relay: rows the after-commit path could not send, and relays in parallel."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mediator import DomainEvent, publish
from mediator.conf import mediator_settings
from mediator.delivery.dispatch import PIPELINE_ROWS, DispatchResult
from mediator.models import OutboxMessage, OutboxStatus
from mediator.recovery.relay import relay_once, relay_pending
from scripts.redis_server import RedisServer
from tests.mediator.helpers import (
    FLAKY,
    RECORD,
    effects,
    handled,
    new_key,
    pending_parked_rows,
    relay_with,
    run_relay,
    store,
)
from tests.support import ROOT, Worker, subprocess_env, wait_for
from tests.testapp.events import Pinged
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)
NEW_HANDLER = "tests.testapp.new_release.record_launch"  # not imported here: the old code


def test_broker_down_at_commit_leaves_row_pending_then_relay_delivers_once(
    celery_worker: Worker, redis_server: RedisServer
) -> None:
    later_callback_ran: list[bool] = []
    redis_server.stop()
    try:
        started = time.monotonic()
        with transaction.atomic():
            event_id = publish(Pinged(key=new_key()))
            transaction.on_commit(lambda: later_callback_ran.append(True))
        elapsed = time.monotonic() - started
        # The broker just refused this process: the next commit leaves its
        # event to the relay without trying (and waiting for) the broker.
        with transaction.atomic():
            paused_id = publish(Pinged(key=new_key()))
    finally:
        redis_server.start()
    # The commit itself must not be held hostage by the broker: bounded retry.
    assert elapsed < 3.0, f"publishing after commit blocked for {elapsed:.1f}s"
    # A failed dispatch does not raise out of its on_commit callback, which
    # would make Django skip the callbacks registered after it.
    assert later_callback_ran == [True]
    row = OutboxMessage.objects.get(event_id=event_id)
    assert row.status == OutboxStatus.PENDING
    assert row.dispatch_attempts == 1
    assert "Connection refused" in row.last_error or "Error" in row.last_error

    paused = OutboxMessage.objects.get(event_id=paused_id)
    assert (paused.status, paused.dispatch_attempts) == (OutboxStatus.PENDING, 0)

    out = StringIO()
    call_command("relay_outbox", "--grace", "0", stdout=out)
    assert "dispatched 2," in out.getvalue()
    wait_for(lambda: all(handled(e, h) for e in (event_id, paused_id) for h in (RECORD, FLAKY)),
             timeout=60, message="delivery after the broker came back")  # fmt: skip
    for sent in (event_id, paused_id):
        assert effects(sent, "record_ping") == 1
        assert effects(sent, "flaky_ping") == 1
    row.refresh_from_db()
    assert row.status == OutboxStatus.DISPATCHED
    # The relay's successful send ended the pause: commits dispatch at once again.
    with transaction.atomic():
        after_id = publish(Pinged(key=new_key()))
    assert OutboxMessage.objects.get(event_id=after_id).status == OutboxStatus.DISPATCHED


def test_relay_leaves_fresh_rows_to_the_after_commit_path() -> None:
    with transaction.atomic():
        event_id = publish(Pinged(key=new_key()))
    OutboxMessage.objects.filter(event_id=event_id).update(status=OutboxStatus.PENDING)
    out = StringIO()
    call_command("relay_outbox", "--grace", "60", stdout=out)
    assert "dispatched 0," in out.getvalue()
    assert OutboxMessage.objects.get(event_id=event_id).status == OutboxStatus.PENDING


RELAY = """
import sys, django, redis
django.setup()
from mediator.recovery.relay import relay_pending
r = redis.Redis.from_url(sys.argv[1])
if r.blpop(["go"], timeout=60) is None:  # the start gate: a token each, pushed at once
    sys.exit("no go within 60 s")
result = relay_pending(batch_size=50, grace_seconds=0)
print(result.dispatched)
"""


def test_the_relay_runs_as_many_queries_for_three_rows_as_for_sixty(
    redis_server: RedisServer,
) -> None:
    """Every field the envelope needs is loaded with the batch (the mapping's
    columns): no row costs a query of its own."""

    def relay(rows: int) -> list[str]:
        pending_parked_rows(rows)
        with CaptureQueriesContext(connection) as queries:
            result = relay_once(grace_seconds=0)
        assert result.dispatched == rows
        return [query["sql"] for query in queries.captured_queries]

    try:
        small, large = relay(3), relay(60)
    finally:
        store().delete("parked")
    assert len(small) == len(large), "\n".join(large)
    assert not OutboxMessage.objects.filter(status=OutboxStatus.PENDING).exists()


def test_two_relays_at_once_dispatch_each_row_exactly_once(redis_server: RedisServer) -> None:
    rows = 2000
    pending_parked_rows(rows)
    r = store()
    r.delete("go", "parked")
    env = subprocess_env(redis_server.url)
    relays = [
        subprocess.Popen([sys.executable, "-c", RELAY, redis_server.url], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    wait_for(lambda: all(p.poll() is None for p in relays), message="relays running")
    r.rpush("go", *[1] * len(relays))
    outputs = [p.communicate(timeout=120) for p in relays]
    assert all(p.returncode == 0 for p in relays), [err for _, err in outputs]
    counts = [int(out.strip()) for out, _ in outputs]

    messages = [json.loads(raw) for raw in r.lrange("parked", 0, -1)]
    task_ids = [m["headers"]["id"] for m in messages]
    assert sum(counts) == rows
    assert len(task_ids) == rows
    assert len(set(task_ids)) == rows, "a row was dispatched twice"
    assert not OutboxMessage.objects.filter(status=OutboxStatus.PENDING).exists()
    assert set(OutboxMessage.objects.values_list("dispatch_attempts", flat=True)) == {1}
    if connection.vendor == "postgresql":
        assert min(counts) > 0, f"SKIP LOCKED should share the work: {counts}"
    r.delete("parked")


def test_a_broker_killed_mid_batch_loses_nothing_and_the_inbox_absorbs_the_resent(
    tmp_path: Path,
) -> None:
    """Redis is SIGKILLed while the relay's pipelines go out (batches of 200
    rows on SQLite, 500 on PostgreSQL, 100 rows a pipeline): the rows of
    pipelines Redis answered are dispatched, the rest stay pending, and the
    next relay sends them; the one pipeline in flight may arrive twice, and
    the worker runs each event once all the same."""
    rows = 2000
    pending_parked_rows(rows)
    # AOF fsynced before each reply: what Redis answered survives the SIGKILL (with
    # the default, once a second, it may lose its last second: the reconciler's case).
    broker = RedisServer(data_dir=tmp_path / "redis", fsync_always=True).start()
    worker: Worker | None = None
    try:
        client = redis.Redis.from_url(broker.url)
        relay = run_relay(broker.url)
        # More rows in Redis than one pipeline holds: the relay has read the
        # first pipeline's reply (it sends the next only then), so some rows
        # count as dispatched whenever the kill lands. (Waiting for the first
        # row only raced a loaded machine: the kill could beat that reply.)
        wait_for(lambda: client.llen("parked") > PIPELINE_ROWS, timeout=60,
                 message="a first pipeline answered")  # fmt: skip
        assert broker.process is not None
        broker.process.kill()
        broker.process.wait(5)
        out, err = relay.communicate(timeout=60)
        assert relay.returncode == 0, err
        first = json.loads(out)
        assert first["dispatched"] > 0, first  # it died mid-batch: some rows went out,
        assert first["failed"] > 0, first  # and some were refused
        pending = OutboxMessage.objects.filter(status=OutboxStatus.PENDING)
        assert pending.count() == rows - first["dispatched"]
        refused = pending.exclude(last_error="")
        assert refused.count() == first["failed"]
        assert "Error" in refused.first().last_error  # type: ignore[union-attr]

        broker.start()
        assert relay_with(broker.url) == {"dispatched": rows - first["dispatched"], "failed": 0}
        assert not pending.exists()

        ids = [json.loads(raw)["headers"]["id"] for raw in client.lrange("parked", 0, -1)]
        assert len(set(ids)) == rows, "a row's task was lost"
        assert len(ids) - rows <= PIPELINE_ROWS, "more re-sent than the one pipeline in flight"

        worker = Worker(broker_url=broker.url, log_dir=tmp_path, queues="parked").wait_ready()
        wait_for(lambda: client.llen("parked") == 0 and Effect.objects.filter(handler="parked")
                 .values("event_id").distinct().count() == rows,
                 timeout=120, message="every parked event handled")  # fmt: skip
        duplicated = (
            Effect.objects.filter(handler="parked")
            .values("event_id").annotate(n=Count("id")).filter(n__gt=1)
        )  # fmt: skip
        assert not duplicated.exists(), list(duplicated[:5])
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()


def test_an_event_published_by_old_code_is_sent_by_a_relay_on_new_code(
    isolated_registry: None, start_worker: Callable[..., Worker], redis_server: RedisServer
) -> None:
    """A rolling deploy: this process plays a web process on the old release,
    which has the event class but not its handler; a worker and a relay on the
    new release (TESTAPP_NEW_RELEASE: tests/testapp/new_release.py) have both."""

    class Launched(DomainEvent):  # the old release's class, with no handler here
        event_type = "testapp.Launched"

        key: str

    with transaction.atomic():
        event_id = publish(Launched(key=new_key()))
    row = OutboxMessage.objects.get(event_id=event_id)
    assert row.status == OutboxStatus.PENDING  # not no_handlers for good

    new_release = {"TESTAPP_NEW_RELEASE": "1"}
    start_worker(queues="new-release", concurrency=1, env=new_release)  # its handler's queue
    loop = ["relay_outbox", "--loop", "--grace", "0", "--interval", "0.2"]
    relay = subprocess.Popen(
        [sys.executable, "manage.py", *loop],
        cwd=ROOT, env=subprocess_env(redis_server.url, **new_release),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: handled(event_id, NEW_HANDLER), message="the new release's handler")
    finally:
        relay.send_signal(signal.SIGTERM)
        _, err = relay.communicate(timeout=30)
    assert relay.returncode == 0, err
    assert effects(event_id, "record_launch") == 1
    row.refresh_from_db()
    assert (row.status, row.handlers) == (OutboxStatus.DISPATCHED, [NEW_HANDLER])


def test_a_row_no_process_has_a_handler_for_waits_the_window_then_is_no_handlers(
    isolated_registry: None,
) -> None:
    class Unheard(DomainEvent):
        event_type = "testapp.Unheard"

    with transaction.atomic():
        event_id = publish(Unheard())
    unheard = OutboxMessage.objects.filter(event_id=event_id)
    window = timedelta(seconds=float(mediator_settings()["NO_HANDLERS_AFTER_SECONDS"]))

    # Published two minutes ago, and due for a look: a relay that has no
    # handler either leaves it pending, and looks again only two minutes on.
    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    unheard.update(occurred_at=two_minutes_ago, created_at=two_minutes_ago)
    pending_parked_rows(1)  # a row behind it, with a handler
    result = relay_pending(batch_size=1, grace_seconds=0)
    assert (result.waiting, result.dispatched, result.no_handlers) == (1, 1, 0)  # not starved
    row = unheard.get()
    assert row.status == OutboxStatus.PENDING
    assert row.created_at >= timezone.now() + timedelta(seconds=110)
    with CaptureQueriesContext(connection) as queries:
        assert relay_once(grace_seconds=0) == DispatchResult()  # no hot loop: not picked again
    assert len(queries) <= 3  # the scan, and the transaction around it

    # Older than the window, and still no handler anywhere: no_handlers for good.
    unheard.update(
        occurred_at=timezone.now() - window - timedelta(seconds=1),
        created_at=timezone.now() - timedelta(seconds=1),
    )
    assert relay_once(grace_seconds=0).no_handlers == 1
    row = unheard.get()
    assert (row.status, row.handlers) == (OutboxStatus.NO_HANDLERS, [])
    assert row.dispatched_at is not None
