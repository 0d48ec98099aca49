"""Broker amnesia: deliveries dispatched, then lost by Redis, are sent again."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from mediator import publish
from mediator.models import OutboxMessage, OutboxStatus
from mediator.recovery.reconcile import overdue_deliveries
from scripts.redis_server import RedisServer
from tests.mediator.helpers import FLAKY, RECORD, handled, poisoned, publish_ping, store
from tests.support import Worker, wait_for
from tests.testapp.events import Parked
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)
PARKED = "tests.testapp.handlers.parked"


def sweep(*args: str) -> str:
    out = StringIO()
    call_command("relay_outbox", *args, stdout=out)
    return out.getvalue()


def test_redis_restarted_without_its_data_loses_nothing(
    redis_server: RedisServer, start_worker: Callable[..., Worker]
) -> None:
    store().delete("parked")
    with transaction.atomic():
        event_id = publish(Parked(n=1))
    assert OutboxMessage.objects.get(event_id=event_id).status == OutboxStatus.DISPATCHED
    assert store().llen("parked") == 1  # the task waits in Redis ...

    redis_server.stop()  # ... and Redis restarts with no persistence: it is gone
    redis_server.start()
    assert store().llen("parked") == 0
    assert overdue_deliveries(redeliver_after=0) == 1

    # Within the bound nothing is re-sent: the delivery may still be on its way.
    assert "redelivered 0, settled 0" in sweep("--redeliver-after", "3600")
    assert "redelivered 1, settled 0" in sweep("--redeliver-after", "0")
    start_worker(queues="parked")
    wait_for(lambda: handled(event_id, PARKED), message="the re-sent delivery")
    assert Effect.objects.filter(event_id=event_id, handler="parked").count() == 1
    assert overdue_deliveries(redeliver_after=0) == 0

    assert "redelivered 0, settled 1" in sweep("--redeliver-after", "0")
    row = OutboxMessage.objects.get(event_id=event_id)
    assert row.redeliveries == 1
    assert row.settled_at is not None


def test_done_and_poisoned_deliveries_are_settled_not_re_sent(celery_worker: Worker) -> None:
    done_id, _ = publish_ping("ok")
    poisoned_id, _ = publish_ping("bug")
    wait_for(lambda: handled(done_id, FLAKY) and handled(done_id, RECORD), message="done")
    wait_for(
        lambda: poisoned(poisoned_id, FLAKY) and handled(poisoned_id, RECORD), message="poison"
    )
    assert overdue_deliveries(redeliver_after=0) == 0
    assert "redelivered 0, settled 2" in sweep("--redeliver-after", "0")
    assert set(OutboxMessage.objects.values_list("redeliveries", flat=True)) == {0}


def test_re_sending_a_delivery_the_broker_still_had_costs_a_skipped_duplicate(
    start_worker: Callable[..., Worker],
) -> None:
    store().delete("parked")
    with transaction.atomic():
        event_id = publish(Parked(n=2))
    # Erring early: the bound passes while the task is still queued.
    assert "redelivered 1, settled 0" in sweep("--redeliver-after", "0")
    assert store().llen("parked") == 2
    start_worker(queues="parked")
    record = wait_for(
        lambda: (rec := handled(event_id, PARKED)) and rec.duplicates == 1 and rec,
        message="both copies to be consumed",
    )
    assert record.duplicates == 1
    assert Effect.objects.filter(event_id=event_id, handler="parked").count() == 1
