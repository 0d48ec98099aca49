from __future__ import annotations

import uuid

import redis
from django.conf import settings
from django.db import transaction

from mediator import publish
from mediator.models import InboxRecord, PoisonedTask
from tests.testapp.events import Pinged
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
