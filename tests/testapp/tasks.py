"""django-tasks `@task` functions run by mediator.tasks_backend.MediatorBackend
(tests/settings.py sets TASKS). Attempts are counted in Redis, outside the
transaction a failure rolls back; effects are Effect rows, inside it."""

from django_tasks import TaskContext, task

from mediator import RetryableError, current_event_id
from tests.testapp.handlers import store
from tests.testapp.models import Effect


@task
def record_task(key: str, *, times: int = 1) -> int:
    """Writes `times` effect rows for its run, and returns a value nobody keeps."""
    store().incr(f"task-attempts:{key}")
    for _ in range(times):
        Effect.objects.create(event_id=current_event_id(), handler="record_task")
    return times


@task(max_retries=2, backoff=0.2, backoff_max=0.5)
def failing_task(key: str) -> None:
    attempt = store().incr(f"task-attempts:{key}")
    Effect.objects.create(event_id=current_event_id(), handler="failing_task")
    raise ConnectionError(f"downstream unavailable (attempt {attempt})")


@task(takes_context=True, max_retries=3, backoff=0.1, backoff_max=0.2)
def context_task(context: TaskContext, key: str) -> None:
    """Fails its first attempt; records the attempt TaskContext reports on each."""
    store().rpush(f"task-context:{key}", context.attempt)
    if context.attempt == 1:
        raise RetryableError("not yet")
    Effect.objects.create(event_id=current_event_id(), handler="context_task")


@task
def blocking_task(key: str) -> None:
    """Runs until the test pushes a release token (60 s at most)."""
    r = store()
    r.rpush(f"task-started:{key}", 1)
    # One-second waits: a blocking read longer than redis-py's socket timeout
    # (5 s) would fail the run while a busy test process is still looking.
    for _ in range(60):
        if r.blmove(f"task-release:{key}", f"task-release:{key}", 1, "LEFT", "RIGHT"):
            break
    Effect.objects.create(event_id=current_event_id(), handler="blocking_task")


@task
async def async_task(key: str) -> None:
    await Effect.objects.acreate(event_id=current_event_id(), handler="async_task")


@task(queue_name="reports")
def report_task() -> None:
    """On the Celery queue "reports", which no test worker consumes."""
