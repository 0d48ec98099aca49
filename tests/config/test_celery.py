from __future__ import annotations

import json

import pytest
from celery.app.defaults import NAMESPACES, flatten
from django.conf import settings
from django_celery_results.models import TaskResult

from config.celery import app as celery_app
from config.celery import ping
from tests.support import Worker, wait_for


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
