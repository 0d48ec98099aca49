"""Commands: send() in-process with a result, send_after_commit() through a
real Redis and a real worker, and the behaviours around both."""

from __future__ import annotations

import os
import uuid

import pytest
from django.db import transaction

from mediator import Command, send, send_after_commit
from mediator.exceptions import (
    ImproperEvent,
    InvalidPayload,
    NoCommandHandler,
    PermanentError,
    PublishOutsideTransaction,
)
from mediator.models import OutboxMessage, PoisonStatus
from tests.mediator.helpers import chain, effects, handled, new_key, poisoned, store
from tests.support import Worker, wait_for
from tests.testapp.commands import Probe
from tests.testapp.events import Pinged

PROBE = "tests.testapp.handlers.probe"


@pytest.mark.django_db
def test_send_runs_the_one_handler_now_and_returns_its_result() -> None:
    assert send(Probe(key=new_key(), value=21)) == 42
    assert effects_of_probe() == 1


def effects_of_probe() -> int:
    from tests.testapp.models import Effect

    return Effect.objects.filter(handler="probe").count()


@pytest.mark.django_db
def test_send_shares_the_callers_transaction_a_rollback_undoes_it() -> None:
    class Rollback(Exception):
        pass

    seen_inside: list[int] = []

    def change_then_roll_back() -> None:
        with transaction.atomic():
            assert send(Probe(key=new_key(), value=1)) == 2
            seen_inside.append(effects_of_probe())
            raise Rollback

    with pytest.raises(Rollback):
        change_then_roll_back()
    assert seen_inside == [1]  # visible inside the caller's transaction
    assert effects_of_probe() == 0


@pytest.mark.django_db
def test_a_failing_send_reaches_the_caller_and_undoes_only_its_own_work() -> None:
    with transaction.atomic():
        send(Probe(key=new_key(), value=1))
        with pytest.raises(PermanentError, match="refused"):
            send(Probe(key=new_key(), mode="refuse"))
        # The failed handler's Effect went with its savepoint; the first stays.
        assert effects_of_probe() == 1
    assert effects_of_probe() == 1


@pytest.mark.django_db
def test_behaviours_run_in_the_configured_order_around_send() -> None:
    key = new_key()
    send(Probe(key=key))
    pid = os.getpid()
    assert chain(key) == [f"outer:before:1:{pid}", f"inner:before:1:{pid}", "inner:after",
                          "outer:after"]  # fmt: skip


@pytest.mark.django_db
def test_an_exception_in_a_behaviour_reaches_the_sender_like_the_handlers_own() -> None:
    key = new_key()
    with pytest.raises(ValueError, match="a bug in a behaviour"):
        send(Probe(key=key, mode="behaviour-bug"))
    assert chain(key) == [f"outer:before:1:{os.getpid()}", "outer:error:ValueError"]
    assert effects_of_probe() == 0


@pytest.mark.django_db
def test_send_validates_a_message_built_without_validation() -> None:
    forged = Probe.model_construct(key=new_key(), value="lots")
    with pytest.raises(InvalidPayload, match=r"testapp\.Probe payload is invalid"):
        send(forged)
    assert effects_of_probe() == 0


@pytest.mark.django_db
def test_send_refuses_what_is_not_a_command() -> None:
    with pytest.raises(ImproperEvent, match=r"send\(\) takes a Command, not an event \(Pinged\)"):
        send(Pinged(key="k"))  # type: ignore[arg-type]
    with pytest.raises(ImproperEvent, match=r"send\(\) takes a Command, not dict"):
        send({"key": "k"})  # type: ignore[arg-type]


@pytest.mark.django_db
def test_publish_refuses_a_command() -> None:
    from mediator import publish

    with pytest.raises(ImproperEvent, match="Probe is a command: use send"), transaction.atomic():
        publish(Probe(key="k"))  # type: ignore[arg-type]


def test_a_command_without_a_handler_is_a_clear_error_at_call_time(isolated_registry: None) -> None:
    class Unhandled(Command):
        event_type = "testapp.Unhandled"

    with pytest.raises(NoCommandHandler, match="Unhandled needs exactly one @handles handler"):
        send(Unhandled())


@pytest.mark.django_db(transaction=True)
def test_send_after_commit_outside_a_transaction_is_refused() -> None:
    with pytest.raises(PublishOutsideTransaction, match=r"send_after_commit\(Probe\)"):
        send_after_commit(Probe(key="k"))


@pytest.mark.django_db(transaction=True)
def test_send_after_commit_sends_nothing_when_the_transaction_rolls_back() -> None:
    sent: list[uuid.UUID] = []

    def send_then_roll_back() -> None:
        with transaction.atomic():
            sent.append(send_after_commit(Probe(key=new_key())))
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        send_then_roll_back()
    assert len(sent) == 1
    assert not OutboxMessage.objects.filter(event_id=sent[0]).exists()


@pytest.mark.django_db(transaction=True)
def test_send_after_commit_runs_in_a_worker_with_retries_and_once_only(
    celery_worker: Worker,
) -> None:
    key = new_key()
    with transaction.atomic():
        message_id = send_after_commit(Probe(key=key, mode="fail-twice"))
    wait_for(lambda: handled(message_id, PROBE), message="the command to be done")
    assert int(store().get(f"attempts:{key}") or 0) == 3
    assert effects(message_id, "probe") == 1  # the two failed attempts rolled back
    row = OutboxMessage.objects.get(event_id=message_id)
    assert row.event_type == "testapp.Probe"
    assert row.handlers == [PROBE]


@pytest.mark.django_db(transaction=True)
def test_behaviours_wrap_a_task_in_the_configured_order_and_a_failing_one_is_retried(
    celery_worker: Worker,
) -> None:
    key = new_key()
    with transaction.atomic():
        message_id = send_after_commit(Probe(key=key, mode="behaviour-fails-once"))
    wait_for(lambda: chain(key)[-1:] == ["outer:after"], message="the retried command's chain")
    steps = [step.rsplit(":", 1)[0] if "before" in step else step for step in chain(key)]
    # Attempt 1: the inner behaviour raised, as a handler would; attempt 2 ran through.
    assert steps == [
        "outer:before:1", "outer:error:ConnectionError",
        "outer:before:2", "inner:before:2", "inner:after", "outer:after",
    ]  # fmt: skip
    pids = {step.rsplit(":", 1)[1] for step in chain(key) if "before" in step}
    assert str(os.getpid()) not in pids  # it ran in the worker, not here
    assert effects(message_id, "probe") == 1


@pytest.mark.django_db(transaction=True)
def test_a_bug_in_a_behaviour_is_poisoned_like_a_bug_in_the_handler(
    celery_worker: Worker,
) -> None:
    with transaction.atomic():
        message_id = send_after_commit(Probe(key=new_key(), mode="behaviour-bug"))
    row = wait_for(lambda: poisoned(message_id, PROBE), message="the poisoned command")
    assert row.status == PoisonStatus.POISONED
    assert row.attempts == 1
    assert row.exception == "ValueError: a bug in a behaviour"
    assert handled(message_id, PROBE) is None


@pytest.mark.django_db
def test_a_command_sent_inside_a_handler_keeps_its_id_across_retries() -> None:
    from mediator.messages.context import current_event_id, message_context
    from tests.testapp.models import Effect

    handled_id = uuid.uuid4()

    def run_handler_once() -> list[uuid.UUID]:
        with message_context(correlation_id="c", causation_id="", handling=handled_id):
            send(Probe(key=new_key()))
            send(Probe(key=new_key()))
        return list(
            Effect.objects.filter(handler="probe")
            .order_by("-pk")
            .values_list("event_id", flat=True)
        )[:2][::-1]

    first_try, retry = run_handler_once(), run_handler_once()
    assert first_try == retry  # the same ids: an idempotency key for the command's handler
    assert first_try[0] != first_try[1]
    assert handled_id not in first_try
    with pytest.raises(LookupError):
        current_event_id()  # and outside any handler, there is none
    assert send(Probe(key=new_key(), value=1)) == 2  # outside a handler: a fresh random id
