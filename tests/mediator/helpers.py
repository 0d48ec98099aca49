from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mediator import DomainEvent, publish
from mediator.delivery.mapping import row_for
from mediator.messages.envelope import Envelope
from mediator.models import InboxRecord, OutboxMessage, PoisonedTask
from tests.support import ROOT, subprocess_env, wait_for
from tests.testapp.events import Parked, Pinged
from tests.testapp.handlers import FLAKY
from tests.testapp.models import Effect

RECORD = "tests.testapp.handlers.record_ping"
__all__ = [
    "FLAKY",
    "RECORD",
    "chain",
    "effects",
    "handled",
    "new_key",
    "poisoned",
    "publish_ping",
    "redis_list",
    "store",
]


def new_key() -> str:
    return uuid.uuid4().hex


def store() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def redis_list(key: str) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in store().lrange(key, 0, -1)]


def chain(key: str) -> list[str]:
    """What the recording behaviours (tests/testapp/behaviours.py) saw of a message."""
    return redis_list(f"chain:{key}")


def publish_ping(mode: str = "ok", key: str | None = None) -> tuple[uuid.UUID, str]:
    key = key or new_key()
    with transaction.atomic():
        event_id = publish(Pinged(key=key, mode=mode))
    return event_id, key


def effects(event_id: uuid.UUID, handler: str) -> int:
    return Effect.objects.filter(event_id=event_id, handler=handler).count()


def handled(event_id: uuid.UUID, handler: str) -> InboxRecord | None:
    return InboxRecord.objects.filter(event_id=event_id, handler=handler).first()


def poisoned(event_id: uuid.UUID | None, handler: str) -> PoisonedTask | None:
    return PoisonedTask.objects.filter(event_id=event_id, handler=handler).first()


def assert_poisoned_by_deaths(event_id: uuid.UUID, key: str, healthy_id: uuid.UUID) -> None:
    """A delivery whose pool process died on each of its 3 tries is poisoned as
    such, and neither the other handler of that event nor another event waited."""
    row = wait_for(lambda: poisoned(event_id, FLAKY), timeout=90, message="the poison")
    assert row.exception.startswith("WorkerLostError")
    assert row.attempts == 3
    assert int(store().get(f"attempts:{key}") or 0) == 3
    wait_for(lambda: handled(healthy_id, FLAKY), message="the healthy event")
    assert handled(event_id, RECORD) is not None


def pending_parked_rows(rows: int) -> None:
    """`rows` events pending for a minute, for a queue no test worker consumes."""
    pending_rows(*(Parked(n=n) for n in range(rows)))


def pending_rows(*events: DomainEvent) -> list[uuid.UUID]:
    """The events' outbox rows, written pending a minute ago and not
    dispatched (no on_commit): for a relay in another process to send."""
    past = timezone.now() - timedelta(minutes=1)
    chunk = []
    for event in events:
        row = row_for(Envelope.wrap(event, correlation_id=None, causation_id=None))
        row.created_at = past
        chunk.append(row)
    OutboxMessage.objects.bulk_create(chunk)
    return [row.event_id for row in chunk]


# relay_pending() in a process of its own, on the broker given; prints its result.
RELAY_PENDING = """
import json, sys, django
django.setup()
from mediator.recovery.relay import relay_pending
result = relay_pending(grace_seconds=0)
print(json.dumps({"dispatched": result.dispatched, "failed": result.failed}))
"""


def run_relay(broker_url: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RELAY_PENDING], cwd=ROOT, env=subprocess_env(broker_url, **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def relay_with(broker_url: str, **env: str) -> dict[str, int]:
    """Run the relay to the end against `broker_url`: {"dispatched": n, "failed": n}."""
    relay = run_relay(broker_url, **env)
    out, err = relay.communicate(timeout=120)
    assert relay.returncode == 0, err
    result: dict[str, int] = json.loads(out)
    return result
