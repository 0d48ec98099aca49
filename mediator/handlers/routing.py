from typing import Any

from mediator.handlers.registry import handler_registry


def route_handler_task(name: str, args: Any, kwargs: Any, options: Any, **_: Any) -> dict | None:
    """Celery router (task_routes): a handler's `queue` option."""
    spec = handler_registry.get(name)
    if spec is not None and spec.queue:
        return {"queue": spec.queue}
    return None
