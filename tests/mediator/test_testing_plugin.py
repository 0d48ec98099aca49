"""mediator.testing, the pytest plugin: what a test captured, and delivering
it in-process through the real delivery path. docs/testing.md's example runs
here too, in a pytest of its own (pytester), so the page cannot drift."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from mediator import DomainEvent, handles, publish, send_after_commit
from mediator.delivery.dispatch import BrokerDownPause
from mediator.models import InboxRecord, OutboxMessage, PoisonedTask
from mediator.testing import Deliveries, Outbox, Outcome
from tests.mediator.helpers import FLAKY, RECORD, effects, new_key
from tests.support import ROOT
from tests.testapp.commands import Probe
from tests.testapp.events import Parked, Pinged
from tests.testapp.handlers import flaky_ping, record_ping

Deliver = Callable[..., Deliveries]


def ping(key: str | None = None, mode: str = "ok") -> Pinged:
    event = Pinged(key=key or new_key(), mode=mode)
    with transaction.atomic():
        publish(event)
    return event


def ping_then_roll_back() -> None:
    with transaction.atomic():
        ping()
        raise RuntimeError("changed my mind")


# What was captured


def test_publish_and_send_after_commit_are_captured_typed_and_in_order(
    mediator_outbox: Outbox,
) -> None:
    with transaction.atomic():
        publish(Pinged(key="a"))
        send_after_commit(Probe(key="b", value=2))
        publish(Parked(n=3))
    assert mediator_outbox.messages == [Pinged(key="a"), Probe(key="b", value=2), Parked(n=3)]
    assert mediator_outbox.events == [Pinged(key="a"), Parked(n=3)]
    assert mediator_outbox.commands == [Probe(key="b", value=2)]
    assert mediator_outbox.of_type(Parked) == [Parked(n=3)]
    assert list(mediator_outbox)[1] == mediator_outbox[1] == Probe(key="b", value=2)
    assert mediator_outbox.envelope_of(Parked(n=3)).event_type == "testapp.Parked"


def test_a_rolled_back_savepoint_leaves_nothing_of_its_own(mediator_outbox: Outbox) -> None:
    kept = ping()
    with mediator_outbox.capture() as captured, pytest.raises(RuntimeError):
        ping_then_roll_back()
    captured.assert_nothing_published()
    assert mediator_outbox.messages == [kept]


def test_a_block_sees_only_what_it_wrote(mediator_outbox: Outbox) -> None:
    before = ping()
    with mediator_outbox.capture() as captured:
        inside = ping()
    after = ping()
    assert captured.messages == [inside]
    assert mediator_outbox.messages == [before, inside, after]


def test_a_block_ended_by_a_database_error_shows_nothing(mediator_outbox: Outbox) -> None:
    def ping_then_fail() -> None:
        ping()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT no_such_column FROM {OutboxMessage._meta.db_table}")

    with transaction.atomic():
        with pytest.raises(DatabaseError), mediator_outbox.capture() as captured:
            ping_then_fail()
        transaction.set_rollback(True)  # on PostgreSQL nothing else is possible
    captured.assert_nothing_published()
    mediator_outbox.assert_nothing_published()


def test_the_assertions_return_the_message_or_say_what_was_published(
    mediator_outbox: Outbox,
) -> None:
    first, second = ping(key="one"), ping(key="two")
    assert mediator_outbox.one(Pinged, key="two") == second
    assert mediator_outbox.assert_published(Pinged) == first
    mediator_outbox.assert_not_published(Parked)

    listing = re.escape("the outbox holds 2 message(s):\n  1. Pinged(key='one', mode='ok')\n")
    with pytest.raises(AssertionError, match=r"Expected exactly one Pinged, found 2; " + listing):
        mediator_outbox.one(Pinged)
    with pytest.raises(AssertionError, match=r"Expected Parked\(n=1\); the outbox holds 2"):
        mediator_outbox.assert_published(Parked, n=1)
    with pytest.raises(AssertionError, match=r"Expected no Pinged\(key='one'\), found 1"):
        mediator_outbox.assert_not_published(Pinged, key="one")
    with pytest.raises(AssertionError, match="Expected nothing in the outbox"):
        mediator_outbox.assert_nothing_published()
    with pytest.raises(TypeError, match=r"Pinged has no field\(s\) \['kye'\]"):
        mediator_outbox.one(Pinged, kye="one")


def test_an_empty_outbox_says_so(mediator_outbox: Outbox) -> None:
    with pytest.raises(AssertionError, match="nothing was written to the outbox"):
        mediator_outbox.one(Pinged)
    assert len(mediator_outbox) == 0
    assert not mediator_outbox


@pytest.mark.django_db(transaction=True)
def test_committed_and_rolled_back_blocks_under_transactional_db(mediator_outbox: Outbox) -> None:
    BrokerDownPause.until = float("inf")  # no worker of this session takes them over
    try:
        committed = ping()
        with pytest.raises(RuntimeError):
            ping_then_roll_back()
        assert mediator_outbox.messages == [committed]
        run = mediator_outbox.deliver(handler=record_ping)
        assert run.outcomes == [(RECORD, Outcome.DONE)]
        assert mediator_outbox.deliver(handler=record_ping).outcome(RECORD) == Outcome.DUPLICATE
    finally:
        BrokerDownPause.until = 0.0


# Delivering in-process


def test_each_handler_gets_it_once_and_a_redelivery_is_skipped(mediator_outbox: Outbox) -> None:
    ping()
    first = mediator_outbox.deliver()
    assert first.outcomes == [(RECORD, Outcome.DONE), (FLAKY, Outcome.DONE)]
    again = mediator_outbox.deliver()
    again.assert_all("duplicate")
    event_id = mediator_outbox.envelopes[0].event_id
    assert effects(event_id, "record_ping") == effects(event_id, "flaky_ping") == 1
    record = InboxRecord.objects.get(event_id=event_id, handler=RECORD)
    assert record.duplicates == 1
    assert (first.of(record_ping).attempts, first.of(record_ping).retries) == (1, 0)


def test_retries_run_at_once_then_the_delivery_is_poisoned(mediator_deliver: Deliver) -> None:
    run = mediator_deliver(Pinged(key=new_key(), mode="always-fail"), handler=flaky_ping)
    delivery = run.of(FLAKY)
    assert delivery.outcome == Outcome.POISONED
    assert (delivery.attempts, delivery.retries) == (3, 2)  # max_retries=2
    assert len(delivery.errors) == 3
    assert all(e.startswith("ConnectionError: downstream unavailable") for e in delivery.errors)
    # What a worker would have waited: backoff 0.2 s doubling, capped at 0.5, jittered.
    assert len(delivery.countdowns) == 2
    assert 0.1 <= delivery.countdowns[0] <= 0.2
    assert 0.2 <= delivery.countdowns[1] <= 0.4
    row = delivery.poisoned_task
    assert row is not None
    assert (row.attempts, row.event_type) == (3, "testapp.Pinged")
    assert row.exception.startswith("ConnectionError: downstream unavailable (attempt 3)")
    assert effects(delivery.envelope.event_id, "flaky_ping") == 0  # each attempt rolled back
    assert "poisoned after 3 attempts (ConnectionError" in str(delivery)


def test_a_failure_retrying_cannot_fix_is_poisoned_at_once(mediator_deliver: Deliver) -> None:
    delivery = mediator_deliver(Pinged(key=new_key(), mode="bug"), handler=FLAKY)[0]
    assert (delivery.outcome, delivery.attempts, delivery.countdowns) == (Outcome.POISONED, 1, [])
    assert delivery.errors == ["ValueError: a bug: retrying will not help"]


def test_a_deferral_spends_no_retry_and_ends_the_run(mediator_deliver: Deliver) -> None:
    run = mediator_deliver(Pinged(key=new_key(), mode="defer-4-times"), handler=flaky_ping)
    delivery = run.of(flaky_ping)
    assert (delivery.outcome, delivery.attempts, delivery.retries) == (Outcome.DEFERRED, 1, 0)
    assert delivery.countdowns == [0.1]
    assert delivery.poisoned_task is None
    assert not PoisonedTask.objects.exists()


def test_a_built_message_is_one_event_until_redelivered(mediator_deliver: Deliver) -> None:
    event = Pinged(key=new_key())
    first = mediator_deliver(event, handler=record_ping)
    assert first.outcome(record_ping) == Outcome.DONE
    assert first.redeliver().outcome(record_ping) == Outcome.DUPLICATE
    second = mediator_deliver(event, handler=record_ping)  # a new envelope: a new event
    assert second.outcome(record_ping) == Outcome.DONE
    with pytest.raises(ValueError, match=r"record_ping does not handle testapp\.Parked"):
        mediator_deliver(Parked(n=1), handler=record_ping)
    with pytest.raises(AssertionError, match=r"Expected one delivery to .*flaky_ping, found 0"):
        first.of(flaky_ping)


def test_a_command_sent_after_commit_reaches_its_one_handler(mediator_outbox: Outbox) -> None:
    with transaction.atomic():
        send_after_commit(Probe(key=new_key(), value=21))
    delivery = mediator_outbox.deliver().of("tests.testapp.handlers.probe")
    assert (delivery.outcome, delivery.message) == (Outcome.DONE, mediator_outbox[0])


@dataclass
class QuestionAndAnswer:
    asked: Any  # DomainEvent subclasses with a field `n`
    answered: Any
    answers: list[int]


@pytest.fixture
def question_and_answer(isolated_registry: None) -> QuestionAndAnswer:
    """A handler of Asked that publishes Answered, and a handler of Answered
    (declared in the isolated registry: the system checks never see them)."""

    class Asked(DomainEvent):
        event_type = "testplugin.Asked"
        n: int

    class Answered(DomainEvent):
        event_type = "testplugin.Answered"
        n: int

    answers: list[int] = []

    @handles(Asked, name="testplugin.answer")
    def answer(event: Asked) -> None:
        if event.n > 0:
            publish(Answered(n=event.n))
            publish(Asked(n=event.n - 1))

    @handles(Answered, name="testplugin.note")
    def note(event: Answered) -> None:
        answers.append(event.n)

    return QuestionAndAnswer(Asked, Answered, answers)


def test_what_handlers_publish_is_theirs_to_deliver_or_cascaded(
    mediator_outbox: Outbox, question_and_answer: QuestionAndAnswer
) -> None:
    Asked, Answered = question_and_answer.asked, question_and_answer.answered
    with transaction.atomic():
        publish(Asked(n=2))
    run = mediator_outbox.deliver()
    assert run.outcomes == [("testplugin.answer", Outcome.DONE)]
    assert run.published.messages == [Answered(n=2), Asked(n=1)]
    assert question_and_answer.answers == []

    rest = run.published.deliver(cascade=True)
    assert question_and_answer.answers == [2, 1]
    assert [d.message for d in rest] == [
        Answered(n=2), Asked(n=1), Answered(n=1), Asked(n=0),
    ]  # fmt: skip
    assert rest.published.messages == [Answered(n=1), Asked(n=0)]
    rest.assert_all(Outcome.DONE)


# The documentation's example, run as a project of its own


def docs_files(text: str) -> dict[str, str]:
    """The Python blocks of docs/testing.md that name their file on the first line."""
    files = {}
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        first, _, rest = block.partition("\n")
        named = re.fullmatch(r"# ([\w/]+\.py)", first)
        if named:
            files[named.group(1)] = rest
    return files


EXAMPLE_SETTINGS = """
import os
from tests.settings import *  # this repository's settings play the user's project's

INSTALLED_APPS = [*INSTALLED_APPS, "newsletter"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # in pytester's directory
    _name = os.path.join(os.path.dirname(__file__), "newsletter-example.sqlite3")
else:
    _name = f"test_newsletter_example_{os.getpid()}"
DATABASES["default"]["TEST"] = {"NAME": _name}
"""

EXAMPLE_INI = f"""
[pytest]
pythonpath = . {ROOT}
filterwarnings =
    error::DeprecationWarning:(mediator|newsletter)(\\..*)?
    ignore:Session-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning
"""


def test_the_documented_example_passes_as_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = docs_files((ROOT / "docs" / "testing.md").read_text())
    assert set(files) >= {"newsletter/handlers.py", "tests/test_newsletter.py"}
    for path, source in files.items():
        target = Path(pytester.path, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
    Path(pytester.path, "newsletter", "__init__.py").touch()
    pytester.makepyfile(example_settings=EXAMPLE_SETTINGS)
    pytester.makeini(EXAMPLE_INI)
    # A project of its own: its settings, and no broker but the one its fixtures start.
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "example_settings")
    for name in ("CELERY_BROKER_URL", "REDIS_URL", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=240)
    result.assert_outcomes(passed=5)


WITHOUT_DJANGO = """
import sys


def test_the_plugin_is_loaded_and_has_imported_nothing_of_the_mediator(request):
    assert request.config.pluginmanager.has_plugin("mediator")
    assert not [m for m in sys.modules if m.startswith(("django", "celery", "mediator.delivery"))]


def test_its_fixtures_ask_for_pytest_django_when_used(mediator_outbox):
    pass
"""


def test_a_project_without_pytest_django_is_untouched_until_it_asks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE")
    pytester.makepyfile(test_plain=WITHOUT_DJANGO)
    result = pytester.runpytest_subprocess("-p", "no:django", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'db' not found*"])
