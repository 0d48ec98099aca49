import pytest
from django.core.checks import Error, Warning
from django.test import override_settings

from config.celery import app as celery_app
from mediator import Command, DomainEvent, handles
from mediator.ops.checks import check_wiring


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


def test_visibility_timeout_shorter_than_a_retry_is_an_error() -> None:
    """Read from the Celery app's configuration, not from CELERY_* settings."""
    conf = celery_app.conf
    saved = conf.broker_transport_options
    conf.broker_transport_options = {**saved, "visibility_timeout": 60}
    try:
        messages = check_wiring()
    finally:
        conf.broker_transport_options = saved
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


def test_a_command_with_no_handler_is_an_error_at_startup(isolated_registry: None) -> None:
    class ShipIt(Command):
        event_type = "testapp.ShipIt"

    messages = check_wiring()
    assert ids(messages) == ["mediator.E005"]
    assert "has 0 handlers (none); a command needs exactly one" in messages[0].msg


@pytest.mark.filterwarnings("ignore:Task name .* is already registered")
def test_a_command_with_two_handlers_is_an_error_at_startup(isolated_registry: None) -> None:
    class ShipIt(Command):
        event_type = "testapp.ShipIt"

    @handles(ShipIt, name="testapp.handlers.ship_one")
    def ship_one(command: ShipIt) -> None: ...

    @handles(ShipIt, name="testapp.handlers.ship_two")
    def ship_two(command: ShipIt) -> None: ...

    messages = check_wiring()
    assert ids(messages) == ["mediator.E005"]
    assert "has 2 handlers (testapp.handlers.ship_one, testapp.handlers.ship_two)" in (
        messages[0].msg
    )


def test_one_handler_for_a_command_and_events_is_refused(isolated_registry: None) -> None:
    class ShipIt(Command):
        event_type = "testapp.ShipIt"

    class Shipped(DomainEvent):
        event_type = "testapp.Shipped"

    with pytest.raises(TypeError, match="handles exactly one Command class"):
        handles(ShipIt, Shipped)


def test_a_chain_without_any_behaviour_is_valid() -> None:
    """The inbox transaction is the delivery core's, not a behaviour: no
    chain can lack it (tests/mediator/test_delivery.py runs one without any)."""
    with override_settings(MEDIATOR={"BEHAVIOURS": []}):
        assert check_wiring() == []


def test_a_behaviour_that_cannot_be_imported_is_an_error() -> None:
    chain = ["mediator.behaviours.nope", "mediator.handlers.behaviours.validate"]
    with override_settings(MEDIATOR={"BEHAVIOURS": chain}):
        messages = check_wiring()
    assert ids(messages) == ["mediator.E006"]
    assert "MEDIATOR['BEHAVIOURS'] names 'mediator.behaviours.nope'" in messages[0].msg


def test_the_old_transaction_behaviour_is_refused_with_the_reason() -> None:
    chain = ["mediator.observability.behaviours.log", "mediator.behaviours.transaction"]
    with override_settings(MEDIATOR={"BEHAVIOURS": chain}):
        messages = check_wiring()
    assert ids(messages) == ["mediator.E006"]
    assert "the inbox transaction is part of delivery now" in messages[0].msg


@pytest.mark.filterwarnings("ignore:Task name .* is already registered")
def test_a_saga_step_naming_no_command_is_an_error_at_startup(isolated_registry: None) -> None:
    from mediator import Saga, Step

    class Misnamed(Saga):
        steps = [Step("ordering.ReserveStok", name="reserve"), Step("ordering.OrderPlaced")]

    messages = check_wiring()
    assert ids(messages) == ["mediator.E008", "mediator.E008"]
    assert messages[0].msg == (
        "Saga tests.Misnamed, step reserve: Unknown event type 'ordering.ReserveStok': "
        "no event class has that name."
    )
    assert messages[1].msg == (
        "Saga tests.Misnamed, step order_placed: A saga step sends a Command; "
        "OrderPlaced is an event."
    )
