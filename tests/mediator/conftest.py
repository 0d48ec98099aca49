from collections.abc import Iterator

import pytest

from mediator.handlers.registry import handler_registry
from mediator.messages.base import message_types
from mediator.sagas.definition import saga_registry
from tests.support import celery_tasks_forgotten


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    """Message classes, handlers and sagas declared in the test are forgotten
    after it, and so are their Celery tasks."""
    with (
        message_types.isolated(),
        handler_registry.isolated(),
        saga_registry.isolated(),
        celery_tasks_forgotten(),
    ):
        yield
