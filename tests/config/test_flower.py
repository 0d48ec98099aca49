"""Flower (pinned version) against the pinned Celery, with a real worker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import psutil
import pytest
import requests

from scripts.ports import free_port
from scripts.redis_server import RedisServer
from scripts.run import processes
from tests.support import ROOT, Worker, subprocess_env, wait_for


@pytest.fixture
def flower_process(
    redis_server: RedisServer, celery_worker: Worker, worker_logs
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Flower started as `make run` starts it (scripts/run.py's command line),
    its credentials in its environment."""
    port = free_port()
    log = (worker_logs / "flower.log").open("wb")
    process = subprocess.Popen(
        processes(web_port="0", flower_port=str(port))["flower"],
        cwd=ROOT,
        env={**subprocess_env(redis_server.url), "FLOWER_BASIC_AUTH": "ops:flower-test-pw"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture
def flower(flower_process: tuple[str, subprocess.Popen]) -> str:
    return flower_process[0]


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


def test_no_command_make_run_starts_carries_a_password() -> None:
    for name, argv in processes(web_port="8000", flower_port="5555").items():
        assert not [arg for arg in argv if "auth" in arg or "password" in arg], (name, argv)


@pytest.mark.django_db(transaction=True)
def test_flowers_password_is_not_on_its_command_line(
    flower_process: tuple[str, subprocess.Popen],
) -> None:
    url, process = flower_process
    wait_for(lambda: _answers(url), timeout=30, interval=0.5, message="Flower to listen")
    visible = " ".join(psutil.Process(process.pid).cmdline())  # what ps shows anyone
    assert "flower" in visible
    assert "flower-test-pw" not in visible
    assert requests.get(f"{url}/api/workers", timeout=5).status_code == 401


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return False
    return True
