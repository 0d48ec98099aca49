"""Flower (pinned version) against the pinned Celery, with a real worker."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from scripts.ports import free_port
from scripts.redis_server import RedisServer
from tests.support import ROOT, Worker, subprocess_env, wait_for


@pytest.fixture
def flower(redis_server: RedisServer, celery_worker: Worker, worker_logs):
    port = free_port()
    log = (worker_logs / "flower.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            "--basic-auth=ops:flower-test-pw",
        ],
        cwd=ROOT,
        env=subprocess_env(redis_server.url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.mark.django_db(transaction=True)
def test_flower_answers_with_credentials_and_refuses_without(
    flower: str, celery_worker: Worker
) -> None:
    def workers() -> dict:
        try:
            response = requests.get(
                f"{flower}/api/workers?refresh=1", auth=("ops", "flower-test-pw"), timeout=5
            )
        except requests.ConnectionError:
            return {}
        return response.json() if response.status_code == 200 else {}

    known = wait_for(workers, timeout=30, interval=0.5, message="Flower to list the worker")
    assert any(name.startswith("test-") for name in known)
    assert requests.get(f"{flower}/api/workers", timeout=5).status_code == 401
    assert (
        requests.get(f"{flower}/api/workers", auth=("ops", "wrong"), timeout=5).status_code == 401
    )


@pytest.mark.django_db(transaction=True)
def test_flower_shows_each_handler_as_its_own_task(flower: str, celery_worker: Worker) -> None:
    from tests.mediator.helpers import RECORD, publish_ping

    auth = ("ops", "flower-test-pw")

    def registered() -> list[str]:
        try:
            workers = requests.get(f"{flower}/api/workers?refresh=1", auth=auth, timeout=5).json()
        except (requests.ConnectionError, ValueError):
            return []
        return [task for info in workers.values() for task in info.get("registered", [])]

    names = wait_for(registered, timeout=30, interval=0.5, message="registered tasks")
    assert {"shipping.handlers.cancel_shipment", "notifications.handlers.send_email"} <= set(names)

    event_id, _ = publish_ping()

    def seen() -> list[str]:
        tasks = requests.get(f"{flower}/api/tasks", auth=auth, timeout=5).json()
        return [t["name"] for t in tasks.values() if str(event_id) in (t.get("args") or "")]

    assert RECORD in wait_for(seen, timeout=30, interval=0.5, message="Flower to see the delivery")
