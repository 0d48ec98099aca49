from collections.abc import Iterator

import pytest
from django.core.checks import Error, Warning
from django.test import override_settings

from mediator import DomainEvent, handles, registry
from mediator import events as events_module
from mediator.checks import check_wiring


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    saved = (
        list(events_module._event_classes),
        dict(registry._handlers),
        {k: list(v) for k, v in registry._by_event_type.items()},
        list(registry._duplicate_names),
    )
    yield
    events_module._event_classes[:] = saved[0]
    registry._handlers.clear()
    registry._handlers.update(saved[1])
    registry._by_event_type.clear()
    registry._by_event_type.update(saved[2])
    registry._duplicate_names[:] = saved[3]


def ids(messages: list) -> list[str]:
    return [m.id for m in messages]


def test_project_wiring_is_clean() -> None:
    assert check_wiring() == []


def test_two_event_classes_with_one_type_name_are_an_error(isolated_registry: None) -> None:
    class ThingHappened(DomainEvent):
        event_type = "testapp.ThingHappened"

    class OtherThingHappened(DomainEvent):
        event_type = "testapp.ThingHappened"

    @handles(ThingHappened)
    def on_thing(event: ThingHappened) -> None: ...

    messages = check_wiring()
    assert ids(messages) == ["mediator.E001"]
    assert isinstance(messages[0], Error)
    assert "2 event classes share the type name 'testapp.ThingHappened'" in messages[0].msg


@pytest.mark.filterwarnings("ignore:Task name .* is already registered")
def test_two_handlers_with_one_task_name_are_an_error(isolated_registry: None) -> None:
    class Nudged(DomainEvent):
        event_type = "testapp.Nudged"

    @handles(Nudged, name="testapp.handlers.same")
    def first(event: Nudged) -> None: ...

    @handles(Nudged, name="testapp.handlers.same")
    def second(event: Nudged) -> None: ...

    assert ids(check_wiring()) == ["mediator.E002"]


def test_event_without_handler_is_a_warning(isolated_registry: None) -> None:
    class NobodyCares(DomainEvent):
        event_type = "testapp.NobodyCares"

    messages = check_wiring()
    assert ids(messages) == ["mediator.W001"]
    assert isinstance(messages[0], Warning)
    assert "'testapp.NobodyCares'" in messages[0].msg


@override_settings(CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 60})
def test_visibility_timeout_shorter_than_a_retry_is_an_error() -> None:
    messages = check_wiring()
    assert ids(messages) == ["mediator.E003"]
    assert "would be handed to a second worker" in messages[0].msg


@override_settings(MEDIATOR={"REDELIVER_AFTER_SECONDS": 1.0})
def test_redelivery_bound_shorter_than_a_retry_schedule_is_a_warning() -> None:
    messages = check_wiring()
    assert "mediator.W002" in ids(messages)
    assert any("tests.testapp.handlers.stall may take" in m.msg for m in messages)


@override_settings(MEDIATOR={"MAX_RETRYS": 3})
def test_misspelt_mediator_setting_is_an_error() -> None:
    messages = check_wiring()
    assert ids(messages) == ["mediator.E004"]
    assert "MAX_RETRYS" in messages[0].msg


def test_handles_refuses_what_is_not_an_event() -> None:
    with pytest.raises(TypeError, match="DomainEvent subclasses"):
        handles(dict)  # type: ignore[arg-type]
