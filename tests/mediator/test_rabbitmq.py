"""Publishing to RabbitMQ: the broker's confirms, awaited once a batch, decide
which outbox rows are dispatched (a real rabbitmq-server node)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection

from mediator.delivery.dispatch import delivery_task_id
from mediator.models import OutboxMessage, OutboxStatus
from scripts.rabbitmq_server import RabbitMQServer
from tests.mediator.helpers import pending_parked_rows, relay_with
from tests.support import ROOT, subprocess_env

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
    rows, the 100 whose tasks it took are dispatched, the rest stay pending
    with the reason, and the next relay sends them once there is room."""
    rabbitmq.ctl(
        "set_policy", "cap-parked", "^parked$",
        json.dumps({"max-length": 100, "overflow": "reject-publish"}), "--apply-to", "queues",
    )  # fmt: skip
    pending_parked_rows(300)

    first = relay_with(rabbitmq.url)
    assert first["dispatched"] == 100, first
    assert first["failed"] > 0, first
    taken = take_all(rabbitmq.url, "parked")
    assert len(taken) == 100
    assert set(taken) == task_ids(OutboxStatus.DISPATCHED)
    pending = OutboxMessage.objects.filter(status=OutboxStatus.PENDING)
    assert pending.count() == 200
    refused = pending.exclude(last_error="")
    assert refused.count() == first["failed"]
    assert "RabbitMQ did not confirm" in refused.first().last_error  # type: ignore[union-attr]

    rabbitmq.ctl("clear_policy", "cap-parked")
    assert relay_with(rabbitmq.url) == {"dispatched": 200, "failed": 0}
    assert not pending.exists()
    rest = take_all(rabbitmq.url, "parked")
    assert len(rest) == len(set(rest)) == 200
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
