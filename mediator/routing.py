from typing import Any

from mediator.registry import get_handler


def route_handler_task(name: str, args: Any, kwargs: Any, options: Any, **_: Any) -> dict | None:
    """Celery router (CELERY_TASK_ROUTES): a handler's `queue` option."""
    spec = get_handler(name)
    if spec is not None and spec.queue:
        return {"queue": spec.queue}
    return None
