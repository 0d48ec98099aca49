"""/healthz and /readyz over HTTP, as a load balancer, an anonymous prober and an
operator with the metrics token each see them."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone

from config import health
from mediator import publish
from mediator.models import OutboxMessage, OutboxStatus
from scripts.ports import free_port
from scripts.redis_server import RedisServer
from tests.testapp.events import Parked

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "readyz-test-token"
WITH_TOKEN = {"Authorization": f"Bearer {TOKEN}"}
# What an anonymous answer holds, and nothing more.
PUBLIC_KEYS = {"status", "database", "broker", "outbox"}


@pytest.fixture(autouse=True)
def metrics_token(settings: Any) -> None:
    settings.MEDIATOR = {**settings.MEDIATOR, "METRICS_TOKEN": TOKEN}


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    """The process-wide probe's cached answer is per test."""
    health.broker_probe.forget()
    yield
    health.broker_probe.forget()


class HangingUpBroker:
    """A broker that is down the way a crashed one behind a live port is: it
    takes each TCP connection and closes it at once. It counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def down_broker() -> Iterator[HangingUpBroker]:
    broker = HangingUpBroker()
    yield broker
    broker.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_healthz_answers_without_touching_anything(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_tells_an_anonymous_prober_only_which_checks_pass(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "outbox": "ok"}


def test_readyz_details_need_the_metrics_token_or_staff(client: Client) -> None:
    wrong = client.get("/readyz", headers={"Authorization": "Bearer nope"}).json()
    assert set(wrong) == PUBLIC_KEYS
    details = client.get("/readyz", headers=WITH_TOKEN).json()["details"]
    assert details["outbox_pending"] == 0
    assert details["overdue_deliveries"] == 0
    assert details["outbox_lag_seconds"] == 0
    assert details["errors"] == {}
    assert isinstance(details["breakers"], dict)

    client.force_login(User.objects.create_user("viewer", "v@example.com", "pw"))
    assert set(client.get("/readyz").json()) == PUBLIC_KEYS  # logged in is not staff
    client.force_login(User.objects.create_user("ops", "o@example.com", "pw", is_staff=True))
    assert client.get("/readyz").json()["details"]["outbox_pending"] == 0


def test_readyz_without_a_token_configured_shows_details_to_nobody_anonymous(
    client: Client, settings: Any
) -> None:
    settings.MEDIATOR = {**settings.MEDIATOR, "METRICS_TOKEN": ""}
    assert set(client.get("/readyz", headers={"Authorization": "Bearer "}).json()) == PUBLIC_KEYS


def test_readyz_is_503_when_the_outbox_lags(client: Client) -> None:
    with transaction.atomic():
        event_id = publish(Parked(n=1))
    OutboxMessage.objects.filter(event_id=event_id).update(
        status=OutboxStatus.PENDING, created_at=timezone.now() - timedelta(minutes=5)
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable", "database": "ok", "broker": "ok", "outbox": "failing",
    }  # fmt: skip
    details = client.get("/readyz", headers=WITH_TOKEN).json()["details"]
    assert details["outbox_lag_seconds"] >= 300
    assert details["outbox_pending"] == 1


def test_readyz_counts_overdue_deliveries_for_the_operator(client: Client) -> None:
    with transaction.atomic():
        event_id = publish(Parked(n=2))
    OutboxMessage.objects.filter(event_id=event_id).update(
        dispatched_at=timezone.now() - timedelta(hours=1)
    )
    assert client.get("/readyz", headers=WITH_TOKEN).json()["details"]["overdue_deliveries"] == 1


def test_readyz_is_503_when_the_broker_is_down(client: Client, redis_server: RedisServer) -> None:
    redis_server.stop()
    try:
        anonymous = client.get("/readyz")
        operator = client.get("/readyz", headers=WITH_TOKEN)
    finally:
        redis_server.start()
    assert anonymous.status_code == 503
    assert anonymous.json() == {
        "status": "unavailable", "database": "ok", "broker": "failing", "outbox": "ok",
    }  # fmt: skip
    assert operator.status_code == 503
    errors = operator.json()["details"]["errors"]
    assert errors["broker"] == "OperationalError"
    assert errors["breakers"]  # the breakers live in the same Redis


def test_a_flood_of_probes_while_the_broker_is_down_makes_one_connection_per_interval(
    client: Client, down_broker: HangingUpBroker, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.READYZ_BROKER_CHECK_SECONDS = 5.0
    clock = Clock()
    probe = health.BrokerProbe(url=down_broker.url, clock=clock)
    monkeypatch.setattr(health, "broker_probe", probe)

    answers = [client.get("/readyz") for _ in range(50)]
    assert {a.status_code for a in answers} == {503}
    assert down_broker.connections == 1

    clock.now += 4.9
    client.get("/readyz")
    assert down_broker.connections == 1
    clock.now += 0.1  # the interval is over: the next probe asks again, once
    for _ in range(20):
        client.get("/readyz")
    assert down_broker.connections == 2

    # Nothing an attacker could learn from the anonymous answer.
    body = answers[-1].content.decode()
    assert set(json.loads(body)) == PUBLIC_KEYS
    for secret in ("Error", "lag", "breaker", "pending", "127.0.0.1", "redis"):
        assert secret not in body
    assert client.get("/readyz", headers=WITH_TOKEN).json()["details"]["errors"]["broker"] == (
        "OperationalError"
    )
    assert down_broker.connections == 2


def test_concurrent_probes_share_one_connection_attempt(down_broker: HangingUpBroker) -> None:
    probe = health.BrokerProbe(url=down_broker.url, clock=Clock())
    answers: list[str | None] = []
    threads = [threading.Thread(target=lambda: answers.append(probe.error())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == ["OperationalError"] * 8
    assert down_broker.connections == 1


def test_a_broker_on_a_closed_port_is_503(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(health, "broker_probe", health.BrokerProbe(url=closed))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"] == "failing"
