"""django-tasks' `@task` on the mediator (mediator.tasks_backend), through a
real Redis and a real `celery worker`: the tasks are tests/testapp/tasks.py."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from celery import current_app
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist

from mediator.delivery.dispatch import send_task
from mediator.delivery.mapping import wire_message
from mediator.handlers.registry import get_handler
from mediator.models import DeliveryProgress, OutboxMessage, OutboxStatus, PoisonStatus
from mediator.recovery.relay import relay_once
from mediator.tasks_backend import MediatorBackend, MediatorTask, task_registry
from scripts.redis_server import RedisServer
from tests.mediator.helpers import effects, handled, new_key, poisoned, redis_list, store
from tests.support import ROOT, Worker, subprocess_env, wait_for
from tests.testapp.tasks import (
    async_task,
    blocking_task,
    context_task,
    failing_task,
    record_task,
    report_task,
)

pytestmark = pytest.mark.django_db(transaction=True)


def stray_task() -> None:
    """A task function outside any tasks module (declared by one test only)."""


RECORD = record_task.module_path
FAILING = failing_task.module_path


def attempts(key: str) -> int:
    return int(store().get(f"task-attempts:{key}") or 0)


def test_a_task_is_a_handler_of_its_own_command_with_a_celery_task_named_after_it() -> None:
    spec = get_handler(RECORD)
    assert spec is not None
    assert spec.event_types[0].event_type == f"task:{RECORD}"
    assert spec.is_command_handler
    assert current_app.tasks[RECORD].acks_late
    failing = get_handler(FAILING)
    assert failing is not None
    assert (failing.max_retries, failing.backoff, failing.backoff_max) == (2, 0.2, 0.5)
    assert get_handler(report_task.module_path).queue == "reports"  # type: ignore[union-attr]


def test_committed_enqueue_runs_once_and_a_rolled_back_one_never(celery_worker: Worker) -> None:
    lost = new_key()
    try:
        with transaction.atomic():
            rolled_back = record_task.enqueue(lost)
            raise RuntimeError("changed my mind")
    except RuntimeError:
        pass
    assert not OutboxMessage.objects.exists()
    with pytest.raises(TaskResultDoesNotExist):
        record_task.get_result(rolled_back.id)

    key = new_key()
    with transaction.atomic():
        result = record_task.enqueue(key, times=2)
        assert result.status == TaskResultStatus.READY
    event_id = uuid.UUID(result.id)
    wait_for(lambda: handled(event_id, RECORD), message="the task to run")
    assert effects(event_id, "record_task") == 2  # one run, its two rows
    assert attempts(key) == 1
    assert attempts(lost) == 0
    row = OutboxMessage.objects.get(event_id=event_id)
    assert row.status == OutboxStatus.DISPATCHED
    assert row.payload == {"args": [key], "kwargs": {"times": 2}}
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.finished_at is not None
    assert result.attempts == 1
    assert result.return_value is None  # results are not kept


def test_enqueue_outside_a_transaction_commits_on_its_own(celery_worker: Worker) -> None:
    result = record_task.enqueue(new_key())
    wait_for(lambda: handled(uuid.UUID(result.id), RECORD), message="the task to run")
    assert effects(uuid.UUID(result.id), "record_task") == 1


def test_enqueued_while_the_broker_is_down_runs_after_the_relay(
    celery_worker: Worker, redis_server: RedisServer
) -> None:
    key = new_key()
    redis_server.stop()
    try:
        with transaction.atomic():
            result = record_task.enqueue(key)
    finally:
        redis_server.start()
    event_id = uuid.UUID(result.id)
    row = OutboxMessage.objects.get(event_id=event_id)
    assert (row.status, row.dispatch_attempts) == (OutboxStatus.PENDING, 1)
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.READY

    out = StringIO()
    call_command("relay_outbox", "--grace", "0", stdout=out)
    assert "dispatched 1," in out.getvalue()
    wait_for(lambda: handled(event_id, RECORD), timeout=60, message="the relayed task")
    assert effects(event_id, "record_task") == 1


def test_a_task_that_keeps_failing_is_poisoned_with_its_attempts(celery_worker: Worker) -> None:
    key = new_key()
    with transaction.atomic():
        result = failing_task.enqueue(key)
    event_id = uuid.UUID(result.id)
    row = wait_for(lambda: poisoned(event_id, FAILING), message="the poisoned row")
    assert row.attempts == 3  # the first try and max_retries=2
    assert row.status == PoisonStatus.POISONED
    assert row.event_type == f"task:{FAILING}"
    assert row.exception == "ConnectionError: downstream unavailable (attempt 3)"
    assert (row.payload or {})["payload"] == {"args": [key], "kwargs": {}}
    assert attempts(key) == 3
    assert effects(event_id, "failing_task") == 0  # each attempt rolled back

    failed = failing_task.get_result(result.id)
    assert failed.status == TaskResultStatus.FAILED
    assert failed.attempts == 3
    assert failed.errors[0].exception_class is ConnectionError
    assert "downstream unavailable (attempt 3)" in failed.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = failed.return_value


def test_a_redelivered_copy_is_skipped_by_the_inbox(celery_worker: Worker) -> None:
    key = new_key()
    with transaction.atomic():
        result = record_task.enqueue(key)
    event_id = uuid.UUID(result.id)
    wait_for(lambda: handled(event_id, RECORD), message="the first delivery")
    send_task(current_app, RECORD, wire_message(OutboxMessage.objects.get(event_id=event_id)))
    record = wait_for(
        lambda: (rec := handled(event_id, RECORD)) and rec.duplicates == 1 and rec,
        message="the copy to be skipped",
    )
    assert record.duplicates == 1
    assert attempts(key) == 1
    assert effects(event_id, "record_task") == 1


def test_get_result_follows_a_run_from_ready_to_running_to_successful(
    celery_worker: Worker,
) -> None:
    key = new_key()
    with transaction.atomic():
        result = blocking_task.enqueue(key)
        assert blocking_task.get_result(result.id).status == TaskResultStatus.READY
    wait_for(lambda: redis_list(f"task-started:{key}"), message="the task to start")
    # A run still going after RECORD_RUNNING_AFTER (0.5 s) is recorded as running.
    running = wait_for(
        lambda: (r := blocking_task.get_result(result.id)).status == TaskResultStatus.RUNNING and r,
        message="the RUNNING status",
    )
    assert running.started_at is not None
    assert not running.is_finished
    store().rpush(f"task-release:{key}", 1)
    done = wait_for(
        lambda: (r := blocking_task.get_result(result.id)).is_finished and r,
        message="the run to finish",
    )
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.args == [key]
    assert done.enqueued_at is not None
    assert done.finished_at is not None


def test_a_retrying_run_is_ready_again_and_its_context_counts_attempts(
    celery_worker: Worker,
) -> None:
    key = new_key()
    with transaction.atomic():
        result = context_task.enqueue(key)
    event_id = uuid.UUID(result.id)
    wait_for(lambda: handled(event_id, context_task.module_path), message="the second attempt")
    assert redis_list(f"task-context:{key}") == ["1", "2"]
    assert effects(event_id, "context_task") == 1
    assert context_task.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_run_after_holds_the_row_until_it_is_due(celery_worker: Worker) -> None:
    key = new_key()
    due = timezone.now() + timedelta(seconds=2)
    with transaction.atomic():
        result = record_task.using(run_after=due).enqueue(key)
    event_id = uuid.UUID(result.id)
    row = OutboxMessage.objects.get(event_id=event_id)
    assert row.status == OutboxStatus.PENDING  # not sent after commit
    assert row.created_at == due
    assert relay_once(grace_seconds=0).dispatched == 0  # not due yet

    def relayed_and_run() -> bool:
        relay_once(grace_seconds=0)
        return handled(event_id, RECORD) is not None

    wait_for(relayed_and_run, timeout=30, interval=0.2, message="the task once due")
    record = handled(event_id, RECORD)
    assert record is not None
    assert record.handled_at >= due
    assert effects(event_id, "record_task") == 1


def test_an_async_task_runs_in_the_inbox_transaction(celery_worker: Worker) -> None:
    with transaction.atomic():
        result = async_task.enqueue(new_key())
    event_id = uuid.UUID(result.id)
    wait_for(lambda: handled(event_id, async_task.module_path), message="the async task")
    assert effects(event_id, "async_task") == 1


def test_what_the_backend_refuses_it_refuses_in_the_caller() -> None:
    with pytest.raises(InvalidTaskError, match="priority"):
        record_task.using(priority=5)
    with pytest.raises(InvalidTaskError, match="Queue 'elsewhere' is not valid"):
        record_task.using(queue_name="elsewhere")
    with pytest.raises(InvalidTaskError, match="routes per task function"):
        record_task.using(queue_name="reports")
    with pytest.raises(TypeError, match="Unsupported type"), transaction.atomic():
        record_task.enqueue(object())  # type: ignore[arg-type]
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("not-an-id")
    assert not OutboxMessage.objects.exists()
    assert not DeliveryProgress.objects.exists()
    assert MediatorBackend.supports_defer
    assert MediatorBackend.supports_get_result


def test_the_mediator_runs_without_django_tasks_and_the_backend_names_the_extra(
    redis_server: RedisServer,
) -> None:
    code = (
        "import sys; sys.modules['django_tasks'] = None\n"
        "import django; django.setup()\n"
        "from mediator.models import OutboxMessage\n"
        "try:\n"
        "    import mediator.tasks_backend\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    # The shop's settings configure no TASKS: the mediator starts without the package.
    env = subprocess_env(redis_server.url, DJANGO_SETTINGS_MODULE="config.settings")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "ImproperlyConfigured" in done.stdout
    assert "django-durable-mediator[tasks]" in done.stdout


def test_every_process_imports_the_apps_tasks_modules_at_startup(redis_server: RedisServer) -> None:
    """A relay that never imported a task's module would find no handler for
    its rows and mark them "no handlers": ready() imports tasks.py as it
    imports handlers.py."""
    code = (
        "import sys, django; django.setup()\n"
        "from mediator.handlers.registry import get_handler\n"
        "print('tests.testapp.tasks' in sys.modules, get_handler(sys.argv[1]) is not None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, RECORD],
        cwd=ROOT,
        env=subprocess_env(redis_server.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_a_task_outside_a_tasks_module_is_a_check_warning(isolated_registry: None) -> None:
    assert list(default_task_backend.check()) == []
    with task_registry.isolated():
        MediatorTask(func=stray_task)
        warnings = list(default_task_backend.check())
    assert [w.id for w in warnings] == ["mediator.W004"]
    assert "tests.mediator.test_tasks_backend.stray_task" in warnings[0].msg
    assert get_handler("tests.mediator.test_tasks_backend.stray_task") is not None
