from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from mediator import publish
from mediator.models import OutboxMessage, OutboxStatus
from scripts.redis_server import RedisServer
from tests.testapp.events import Parked

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_answers_without_touching_anything(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_broker_lag_and_overdue(client: Client) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"
    assert body["outbox_pending"] == 0
    assert body["overdue_deliveries"] == 0


def test_readyz_is_503_when_the_outbox_lags(client: Client) -> None:
    with transaction.atomic():
        event_id = publish(Parked(n=1))
    OutboxMessage.objects.filter(event_id=event_id).update(
        status=OutboxStatus.PENDING, created_at=timezone.now() - timedelta(minutes=5)
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["outbox_lag_seconds"] >= 300


def test_readyz_counts_overdue_deliveries(client: Client) -> None:
    with transaction.atomic():
        event_id = publish(Parked(n=2))
    OutboxMessage.objects.filter(event_id=event_id).update(
        dispatched_at=timezone.now() - timedelta(hours=1)
    )
    assert client.get("/readyz").json()["overdue_deliveries"] == 1


def test_readyz_is_503_when_the_broker_is_down(client: Client, redis_server: RedisServer) -> None:
    redis_server.stop()
    try:
        response = client.get("/readyz")
    finally:
        redis_server.start()
    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")
