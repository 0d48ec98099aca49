from collections.abc import Iterator

import pytest

from mediator import events as events_module
from mediator import registry


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    saved = (
        list(events_module._message_classes),
        dict(registry._handlers),
        {k: list(v) for k, v in registry._by_event_type.items()},
        list(registry._duplicate_names),
    )
    yield
    events_module._message_classes[:] = saved[0]
    registry._handlers.clear()
    registry._handlers.update(saved[1])
    registry._by_event_type.clear()
    registry._by_event_type.update(saved[2])
    registry._duplicate_names[:] = saved[3]
