from collections.abc import Iterator

import pytest

from mediator.handlers.registry import handler_registry
from mediator.messages.base import message_types
from mediator.sagas.definition import saga_registry


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    """Message classes, handlers and sagas declared in the test are forgotten after it."""
    with message_types.isolated(), handler_registry.isolated(), saga_registry.isolated():
        yield
