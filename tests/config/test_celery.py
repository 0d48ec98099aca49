from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from celery.app.defaults import NAMESPACES, flatten
from django.conf import settings
from django_celery_results.models import TaskResult

from config.celery import app as celery_app
from config.celery import ping
from scripts.redis_server import RedisServer
from tests.support import ROOT, Worker, subprocess_env, wait_for


def known_celery_settings() -> set[str]:
    return {str(item[0]).upper() for item in flatten(NAMESPACES)}


def test_every_celery_setting_is_one_celery_knows() -> None:
    ours = {name.removeprefix("CELERY_") for name in dir(settings) if name.startswith("CELERY_")}
    unknown = ours - known_celery_settings()
    assert ours, "expected the project to set CELERY_* settings"
    assert not unknown, f"Celery silently ignores these settings: {sorted(unknown)}"


def test_celery_is_configured_for_durable_json_delivery() -> None:
    conf = celery_app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.result_backend == "django-db"
    assert conf.result_extended is True
    assert conf.broker_transport_options["visibility_timeout"] >= 3600


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_a_task_and_its_result_lands_in_the_database(
    celery_worker: Worker,
) -> None:
    async_result = ping.delay()
    wait_for(
        lambda: TaskResult.objects.filter(task_id=async_result.id, status="SUCCESS").exists(),
        timeout=30,
        message="the ping result row",
    )
    row = TaskResult.objects.get(task_id=async_result.id)
    assert row.task_name == "config.ping"
    assert json.loads(row.result) == "pong"
    assert str(row.worker).startswith("test-")  # type: ignore[attr-defined]


def test_beat_rewrites_its_schedule_after_every_task_it_sends(tmp_path: Path) -> None:
    """Compose's health check of beat reads the schedule file's modification
    time; by Celery's default beat rewrites it only every 3 minutes."""
    broker = RedisServer().start()  # its own: the session broker's workers get no relay tasks
    env = subprocess_env(broker.url, MEDIATOR_RELAY_INTERVAL="0.5")
    argv = [sys.executable, "-m", "celery", "-A", "config", "beat", "--schedule"]
    beat = subprocess.Popen(
        [*argv, str(tmp_path / "celerybeat-schedule")], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip

    def written() -> float:  # one file or several (.dat, .dir), by the dbm module
        return max((p.stat().st_mtime for p in tmp_path.glob("celerybeat-schedule*")), default=0)

    try:
        first = wait_for(written, timeout=30, interval=0.1, message="beat's schedule file")
        wait_for(
            lambda: written() > first + 1.5, timeout=30, interval=0.1,
            message="beat to rewrite its schedule after sending the relay task",
        )  # fmt: skip
    finally:
        beat.terminate()
        beat.wait(10)
        broker.stop()
