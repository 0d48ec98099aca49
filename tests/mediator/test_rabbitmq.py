"""RabbitMQ (a real rabbitmq-server node): the broker's confirms, awaited once
a batch, decide which outbox rows are dispatched; the task queues are quorum
queues, and retries, killed processes and a purged queue still end in one
effect per delivery, with real workers (Redis stays for the handlers'
counters and the breakers)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu import Connection

from mediator.delivery.dispatch import delivery_task_id
from mediator.models import OutboxMessage, OutboxStatus
from scripts.rabbitmq_server import RabbitMQServer
from scripts.redis_server import RedisServer
from tests.mediator.helpers import (
    FLAKY,
    assert_poisoned_by_deaths,
    effects,
    handled,
    new_key,
    pending_parked_rows,
    pending_rows,
    relay_with,
    store,
)
from tests.support import ROOT, Worker, subprocess_env, wait_for
from tests.testapp.events import Parked, Pinged
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)

PARKED = "tests.testapp.handlers.parked"

# Two relay passes in one process (so over one pooled connection): the
# oversized row; then, that row set aside, five more.
RELAY_TWICE = """
import json, django
django.setup()
from mediator.models import OutboxMessage
from mediator.recovery.relay import relay_once
from tests.mediator.helpers import pending_parked_rows
r = relay_once(grace_seconds=0)
print(json.dumps({"dispatched": r.dispatched, "failed": r.failed}))
OutboxMessage.objects.filter(status="pending").update(status="no_handlers")
pending_parked_rows(5)
r = relay_once(grace_seconds=0)
print(json.dumps({"dispatched": r.dispatched, "failed": r.failed}))
"""


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[RabbitMQServer]:
    server = RabbitMQServer().start()
    try:
        yield server
    finally:
        server.stop()


def take_all(url: str, queue: str) -> list[str]:
    """The task ids of every message on `queue`, taken off it."""
    ids = []
    with Connection(url) as conn:
        channel: Any = conn.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            ids.append(message.headers["id"])
    return ids


def task_ids(status: OutboxStatus) -> set[str]:
    rows = OutboxMessage.objects.filter(status=status).values_list("event_id", flat=True)
    return {delivery_task_id(event_id, PARKED) for event_id in rows}


def test_rows_are_dispatched_only_for_the_tasks_rabbitmq_confirmed(
    rabbitmq: RabbitMQServer,
) -> None:
    """A queue that holds 100 messages and refuses more (basic.nack): of 300
    rows, the ones whose tasks it took are dispatched, the rest stay pending
    with the reason, and the next relay sends them once there is room. (A
    quorum queue applies its limit with a lag: it may take a few more.)"""
    rabbitmq.ctl(
        "set_policy", "cap-parked", "^parked$",
        json.dumps({"max-length": 100, "overflow": "reject-publish"}), "--apply-to", "queues",
    )  # fmt: skip
    pending_parked_rows(300)

    first = relay_with(rabbitmq.url)
    assert first["failed"] > 0, first
    taken = take_all(rabbitmq.url, "parked")
    assert 100 <= len(taken) < 300
    assert first["dispatched"] == len(taken), first
    assert set(taken) == task_ids(OutboxStatus.DISPATCHED)
    pending = OutboxMessage.objects.filter(status=OutboxStatus.PENDING)
    assert pending.count() == 300 - len(taken)
    refused = pending.exclude(last_error="")
    assert refused.count() == first["failed"]
    assert "RabbitMQ did not confirm" in refused.first().last_error  # type: ignore[union-attr]

    rabbitmq.ctl("clear_policy", "cap-parked")
    assert relay_with(rabbitmq.url) == {"dispatched": 300 - len(taken), "failed": 0}
    assert not pending.exists()
    rest = take_all(rabbitmq.url, "parked")
    assert len(rest) == len(set(rest)) == 300 - len(taken)
    assert set(taken) | set(rest) == task_ids(OutboxStatus.DISPATCHED)


def test_after_rabbitmq_closes_the_confirm_channel_the_next_batch_is_confirmed_again(
    rabbitmq: RabbitMQServer,
) -> None:
    """A message over the broker's size limit makes RabbitMQ close the channel
    (406); py-amqp reopens it, out of confirm mode. That row is not
    dispatched, and the next batch on the same connection goes out on a fresh
    confirm channel and is confirmed (on the reopened one no confirm would
    ever come, and every row would fail after the timeout)."""
    rabbitmq.ctl("eval", "application:set_env(rabbit, max_message_size, 8192).")
    try:
        pending_parked_rows(1)
        OutboxMessage.objects.update(payload={"n": 0, "padding": "x" * 20_000})
        script = RELAY_TWICE
        relay = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=subprocess_env(rabbitmq.url),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert relay.returncode == 0, relay.stderr
        first, second = (json.loads(line) for line in relay.stdout.splitlines())
    finally:
        rabbitmq.ctl("eval", "application:set_env(rabbit, max_message_size, 134217728).")
    assert first == {"dispatched": 0, "failed": 1}
    assert second == {"dispatched": 5, "failed": 0}, second
    assert OutboxMessage.objects.filter(status=OutboxStatus.DISPATCHED).count() == 5
    assert len(take_all(rabbitmq.url, "parked")) == 5


# --- Quorum queues, with real workers ---------------------------------------


@pytest.fixture
def on_rabbitmq(
    rabbitmq: RabbitMQServer, redis_server: RedisServer
) -> Callable[..., dict[str, int]]:
    """Relay every pending row to RabbitMQ, from a process configured for it
    (this one's Celery app talks to Redis)."""

    def relay() -> dict[str, int]:
        return relay_with(rabbitmq.url, REDIS_URL=redis_server.url)

    return relay


@pytest.fixture
def rabbitmq_worker(
    rabbitmq: RabbitMQServer, redis_server: RedisServer, start_worker: Callable[..., Worker]
) -> Callable[..., Worker]:
    def start(**kwargs: Any) -> Worker:
        return start_worker(broker_url=rabbitmq.url, env={"REDIS_URL": redis_server.url}, **kwargs)

    return start


def queue_types(rabbitmq: RabbitMQServer) -> dict[str, str]:
    lines = rabbitmq.ctl("list_queues", "name", "type", "--no-table-headers").splitlines()
    return dict(line.split("\t")[:2] for line in lines if "\t" in line)


def sweep_on(rabbitmq: RabbitMQServer, redis_server: RedisServer, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "relay_outbox", *args], cwd=ROOT,
        env=subprocess_env(rabbitmq.url, REDIS_URL=redis_server.url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def ping(mode: str) -> tuple[Any, str]:
    key = new_key()
    (event_id,) = pending_rows(Pinged(key=key, mode=mode))
    return event_id, key


def test_tasks_wait_in_quorum_queues_and_retries_in_the_broker(
    rabbitmq: RabbitMQServer,
    rabbitmq_worker: Callable[..., Worker],
    on_rabbitmq: Callable[[], dict[str, int]],
) -> None:
    """The default queue and a handler's own queue are quorum queues; a
    handler failing twice with a backoff under a second is retried (the
    countdown rounded up to the whole second that native delayed delivery
    counts in) and applies its effect once."""
    worker = rabbitmq_worker()
    assert "Global QoS is disabled" in worker.log()
    event_id, key = ping("fail-twice")
    pending_parked_rows(1)
    assert on_rabbitmq() == {"dispatched": 2, "failed": 0}

    wait_for(lambda: handled(event_id, FLAKY), message="the third attempt to succeed")
    assert int(store().get(f"attempts:{key}") or 0) == 3
    assert effects(event_id, "flaky_ping") == 1
    assert effects(event_id, "record_ping") == 1
    times = [float(t) for t in store().lrange(f"attempt-times:{key}", 0, -1)]
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(times)), times
    assert "could not schedule a retry" not in worker.log()  # each retry was a real one
    types = queue_types(rabbitmq)
    assert types["celery"] == "quorum"
    assert types["parked"] == "quorum"
    assert types["celery_delayed_0"] == "quorum"  # where a retry waits its second


def test_pool_process_killed_on_a_quorum_queue_is_redelivered_and_applies_once(
    rabbitmq_worker: Callable[..., Worker], on_rabbitmq: Callable[[], dict[str, int]]
) -> None:
    worker = rabbitmq_worker()
    event_id, key = ping("block")
    assert on_rabbitmq()["dispatched"] == 1
    r = store()
    started: Any = wait_for(lambda: r.lindex(f"started:{key}", 0), message="the handler to start")
    assert int(started) in worker.pool_pids()
    os.kill(int(started), signal.SIGKILL)
    r.rpush(f"release:{key}", 1)
    wait_for(lambda: handled(event_id, FLAKY), message="the redelivered task to finish")
    assert r.llen(f"started:{key}") == 2
    assert effects(event_id, "flaky_ping") == 1


def test_process_killed_on_every_delivery_is_poisoned_on_quorum_queues(
    rabbitmq_worker: Callable[..., Worker], on_rabbitmq: Callable[[], dict[str, int]]
) -> None:
    """Each death is re-sent as a retry (after the handler's backoff, a
    whole second here) and counts: the third is poisoned, and the other
    handler and other events are not held up."""
    rabbitmq_worker()
    event_id, key = ping("always-die")
    healthy_id, _ = ping("ok")
    assert on_rabbitmq()["dispatched"] == 2
    assert_poisoned_by_deaths(event_id, key, healthy_id)


def test_a_purged_queue_loses_nothing_the_reconciler_sends_it_again(
    rabbitmq: RabbitMQServer,
    redis_server: RedisServer,
    rabbitmq_worker: Callable[..., Worker],
    on_rabbitmq: Callable[[], dict[str, int]],
) -> None:
    """The broker that forgets its tasks: dispatched, confirmed, then purged
    from the queue. The reconciler finds the deliveries neither done nor
    poisoned and sends them again; each applies once."""
    event_ids = pending_rows(*(Parked(n=n) for n in range(3)))
    assert on_rabbitmq() == {"dispatched": 3, "failed": 0}
    assert OutboxMessage.objects.filter(status=OutboxStatus.DISPATCHED).count() == 3
    assert rabbitmq.ctl("purge_queue", "parked").strip() == ""
    with Connection(rabbitmq.url) as conn:
        channel: Any = conn.default_channel
        assert channel.queue_declare("parked", passive=True).message_count == 0

    assert "redelivered 0, settled 0" in sweep_on(rabbitmq, redis_server)  # within the bound
    assert "redelivered 3, settled 0" in sweep_on(rabbitmq, redis_server, "--redeliver-after", "0")
    rabbitmq_worker(queues="parked")
    wait_for(lambda: all(handled(e, PARKED) for e in event_ids), message="the re-sent deliveries")
    assert sorted(
        Effect.objects.filter(handler="parked").values_list("event_id", flat=True)
    ) == sorted(event_ids)
    assert "redelivered 0, settled 3" in sweep_on(rabbitmq, redis_server, "--redeliver-after", "0")
    assert set(OutboxMessage.objects.values_list("redeliveries", flat=True)) == {1}
