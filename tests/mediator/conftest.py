from collections.abc import Iterator

import pytest

from mediator import events as events_module
from mediator import registry, sagas


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    saved = (
        list(events_module._message_classes),
        dict(registry._handlers),
        {k: list(v) for k, v in registry._by_event_type.items()},
        list(registry._duplicate_names),
        (dict(sagas._sagas), dict(sagas._messages), dict(sagas._by_task)),
    )
    yield
    sagas._sagas.clear()
    sagas._sagas.update(saved[4][0])
    sagas._messages.clear()
    sagas._messages.update(saved[4][1])
    sagas._by_task.clear()
    sagas._by_task.update(saved[4][2])
    events_module._message_classes[:] = saved[0]
    registry._handlers.clear()
    registry._handlers.update(saved[1])
    registry._by_event_type.clear()
    registry._by_event_type.update(saved[2])
    registry._duplicate_names[:] = saved[3]
