"""Circuit breakers: state shared by real worker processes through a real Redis."""

from __future__ import annotations

import html
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import pytest
import redis
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client, override_settings
from django.urls import reverse

from mediator import publish
from mediator.exceptions import CircuitOpen
from mediator.models import PoisonedTask
from mediator.resilience.breaker import KEY_PREFIX, Breaker, Ticket
from tests.mediator.helpers import chain, effects, handled, redis_list, store
from tests.support import Worker, wait_for
from tests.testapp.events import DownstreamCalled
from tests.testapp.handlers import DOWNSTREAM

HANDLER = "tests.testapp.handlers.call_downstream"


@dataclass(frozen=True)
class Call:
    start: float
    end: float
    pid: int
    key: str
    ok: bool


@pytest.fixture
def downstream() -> Iterator[redis.Redis]:
    r = store()
    keys = ["downstream:calls", "downstream:down", KEY_PREFIX + DOWNSTREAM]
    r.delete(*keys)
    yield r
    r.delete(*keys)


def calls(r: redis.Redis) -> list[Call]:
    parsed = []
    for line in redis_list("downstream:calls"):
        start, end, pid, key, outcome = line.split()
        parsed.append(Call(float(start), float(end), int(pid), key, outcome == "ok"))
    return sorted(parsed, key=lambda call: call.start)


def publish_call(key: str) -> uuid.UUID:
    store().delete(f"chain:{key}")
    with transaction.atomic():
        return publish(DownstreamCalled(key=key))


@pytest.mark.django_db(transaction=True)
def test_breaker_opens_defers_without_spending_retries_probes_once_and_closes(
    start_worker: Callable[..., Worker], downstream: redis.Redis
) -> None:
    workers = [start_worker(queues="breaker", concurrency=1) for _ in range(2)]
    breaker = Breaker(DOWNSTREAM)
    downstream.set("downstream:down", 1)

    first = publish_call("first")
    # Three failures in a row (threshold 3) open it, whichever worker ran them.
    wait_for(lambda: breaker.state().state == "open", timeout=20, message="the breaker to open")
    assert [(c.key, c.ok) for c in calls(downstream)] == [("first", False)] * 3

    # While it is open, new tasks are deferred in both workers, never run.
    others = [publish_call(f"later-{n}") for n in range(4)]
    keys = ["first"] + [f"later-{n}" for n in range(4)]
    wait_for(
        lambda: all("outer:error:CircuitOpen" in chain(key) for key in keys),
        timeout=6, message="every task to be deferred while the breaker is open",
    )  # fmt: skip
    assert len(calls(downstream)) == 3
    assert breaker.state().state == "open"

    downstream.delete("downstream:down")  # the service recovers during the cool-down
    for event_id, key in zip([first, *others], keys, strict=True):
        wait_for(partial(handled, event_id, HANDLER), timeout=30, message=f"{key} done")

    made = calls(downstream)
    probe = made[3]
    assert probe.ok
    assert probe.start - made[2].end >= 7.5  # no call during the 8 s cool-down
    # The probe went alone: no other call started before it ended, in any process.
    assert all(call.start >= probe.end for call in made[4:])
    assert [c.key for c in made].count("first") == 4
    assert sorted(c.key for c in made[3:]) == sorted(keys)  # each once, all successful
    assert all(call.ok for call in made[3:])

    # "first" failed 3 times (max_retries=3: its 4th attempt is its last), was
    # deferred, and its run after the deferral was still attempt 4: a deferral
    # spends no retry (else that run would be attempt 5, past its budget).
    steps = chain("first")
    assert steps.count("outer:error:CircuitOpen") >= 1
    runs = [step.split(":")[2] for step in steps if step.startswith("outer:before:")]
    assert runs[:3] == ["1", "2", "3"]
    assert set(runs[3:]) == {"4"}
    assert steps[-1] == "outer:after"
    assert not PoisonedTask.objects.filter(handler=HANDLER).exists()
    for event_id in [first, *others]:
        assert effects(event_id, "call_downstream") == 1

    pool_pids = {pid for worker in workers for pid in worker.pool_pids()}
    seen = {int(step.rsplit(":", 1)[1]) for key in keys for step in chain(key) if "before" in step}
    assert len(seen & pool_pids) == 2, (seen, pool_pids)  # both workers obeyed one breaker
    state = breaker.state()
    assert (state.state, state.failures) == ("closed", 0)


@pytest.mark.django_db
def test_open_breaker_shows_in_readyz_and_dashboard_and_an_operator_closes_it(
    client: Client, downstream: redis.Redis
) -> None:
    breaker = Breaker(DOWNSTREAM)
    open_it(breaker)

    assert "breakers" not in client.get("/readyz").content.decode()  # anonymous: no names
    staff = User.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(staff)
    assert client.get("/readyz").json()["details"]["breakers"][DOWNSTREAM] == "open"

    page = client.get(reverse("mediator-dashboard")).content.decode()
    assert f'data-breaker="{DOWNSTREAM}"' in page
    assert '<td class="state">open</td>' in page
    close = reverse("mediator-close-breaker", args=[DOWNSTREAM])
    assert f'action="{close}"' in page

    response = client.post(close, follow=True)
    assert f"Circuit breaker {DOWNSTREAM!r} is closed" in html.unescape(response.content.decode())
    assert breaker.state().state == "closed"
    entry = LogEntry.objects.get(object_id=DOWNSTREAM)  # who closed it, in the admin's history
    assert (entry.user, entry.action_flag) == (staff, CHANGE)
    assert entry.change_message == f"Closed circuit breaker {DOWNSTREAM!r} by hand."
    assert client.get("/readyz").json()["details"]["breakers"][DOWNSTREAM] == "closed"

    unknown = client.post(reverse("mediator-close-breaker", args=["nope"]), follow=True)
    assert "There is no circuit breaker named 'nope'" in html.unescape(unknown.content.decode())


@pytest.mark.django_db
def test_closing_a_breaker_needs_staff_with_change_permission(
    client: Client, downstream: redis.Redis
) -> None:
    breaker = Breaker(DOWNSTREAM)
    open_it(breaker)
    close = reverse("mediator-close-breaker", args=[DOWNSTREAM])
    assert client.post(close).status_code == 302  # to the admin login
    viewer = User.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    client.force_login(viewer)
    assert client.post(close).status_code == 403
    assert breaker.state().state == "open"
    assert not LogEntry.objects.exists()


@pytest.fixture
def quick_breaker(downstream: redis.Redis) -> Iterator[Breaker]:
    """The tests' downstream breaker with a short cool-down and probe timeout."""
    quick = {"FAILURE_THRESHOLD": 3, "RESET_TIMEOUT": 0.3, "PROBE_TIMEOUT": 0.6}
    with override_settings(MEDIATOR={**settings.MEDIATOR, "BREAKERS": {DOWNSTREAM: quick}}):
        yield Breaker(DOWNSTREAM)


def open_it(breaker: Breaker) -> None:
    for _ in range(breaker.settings.failure_threshold):
        breaker.record_failure(breaker.before_call())
    assert breaker.state().state == "open"


def take_probe(breaker: Breaker) -> Ticket:
    def probe() -> Ticket | None:
        try:
            ticket = breaker.before_call()
        except CircuitOpen:
            return None
        assert ticket.probe, "a call went through half-open without being the probe"
        return ticket

    return wait_for(probe, timeout=5, message="the probe slot")


def test_only_the_probe_moves_a_half_open_breaker(quick_breaker: Breaker) -> None:
    breaker = quick_breaker
    before_opening = breaker.before_call()  # a call started while it was closed
    open_it(breaker)
    opened_at = breaker.state().opened_at
    breaker.record_failure(before_opening)  # its late failure does not extend the cool-down
    breaker.record_success(before_opening)  # nor does its late success close it
    assert (breaker.state().state, breaker.state().opened_at) == ("open", opened_at)

    probe = take_probe(breaker)
    assert breaker.state().state == "half_open"
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # one probe at a time
    breaker.record_failure(before_opening)
    assert breaker.state().state == "half_open"
    breaker.record_success(probe)
    assert (breaker.state().state, breaker.state().failures) == ("closed", 0)


def test_a_probe_that_never_reports_frees_the_slot_after_the_probe_timeout(
    quick_breaker: Breaker,
) -> None:
    breaker = quick_breaker
    open_it(breaker)
    lost = take_probe(breaker)  # its worker dies: no outcome ever comes
    started = time.monotonic()
    second = take_probe(breaker)
    assert time.monotonic() - started >= 0.4  # held for about PROBE_TIMEOUT (0.6 s)
    assert second.probe != lost.probe
    breaker.record_success(lost)  # the lost probe's late report is ignored
    assert breaker.state().state == "half_open"
    breaker.record_failure(second)
    assert breaker.state().state == "open"


def test_failures_must_be_in_a_row_to_open_it(quick_breaker: Breaker) -> None:
    breaker = quick_breaker
    early = breaker.before_call()
    for _ in range(2):
        breaker.record_failure(breaker.before_call())
    breaker.record_success(early)  # a success, even of a call that started earlier, resets
    breaker.record_failure(breaker.before_call())
    assert (breaker.state().state, breaker.state().failures) == ("closed", 1)


def test_without_redis_the_breaker_lets_runs_through_and_stops_asking(
    downstream: redis.Redis,
) -> None:
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))  # a port nobody listens on
    url = f"redis://127.0.0.1:{unused.getsockname()[1]}/0"
    try:
        with override_settings(MEDIATOR={**settings.MEDIATOR, "BREAKER_REDIS_URL": url}):
            breaker = Breaker(DOWNSTREAM)
            assert breaker.before_call() == Ticket()
            started = time.monotonic()
            for _ in range(100):
                assert breaker.before_call() == Ticket()
            assert time.monotonic() - started < 0.5  # not a connect attempt each
            assert breaker.close() is False
    finally:
        unused.close()
    assert Breaker(DOWNSTREAM).before_call() == Ticket()  # back on the real Redis


@pytest.mark.django_db
def test_a_redelivery_the_inbox_skips_is_neither_deferred_nor_a_probe(
    quick_breaker: Breaker,
) -> None:
    from mediator.delivery import inbox
    from mediator.delivery.inbox import exactly_once
    from mediator.handlers.pipeline import HandlerContext, run_pipeline
    from mediator.handlers.registry import get_handler

    spec = get_handler(HANDLER)
    assert spec is not None
    context = HandlerContext(
        spec=spec, message_id=uuid.uuid4(), correlation_id="c", causation_id="",
        attempt=2, delivered=True,
    )  # fmt: skip
    with transaction.atomic():
        inbox.claim(context.message_id, HANDLER)  # it was done before the worker died
    open_it(quick_breaker)
    assert run_pipeline(DownstreamCalled(key="again"), context, exactly_once(context)) is None
    assert context.duplicate
    assert calls(store()) == []  # the downstream was not called
    assert quick_breaker.state().state == "open"  # and the breaker did not move


def test_a_database_error_is_not_a_failure_of_the_downstream(quick_breaker: Breaker) -> None:
    """A PostgreSQL restart fails every run in flight; the breaker in front of
    the mail server must not open for it."""
    from django.db import OperationalError

    from mediator.handlers.pipeline import HandlerContext
    from mediator.handlers.registry import get_handler
    from mediator.resilience.behaviours import circuit_breaker

    spec = get_handler(HANDLER)
    assert spec is not None

    def database_restarting() -> None:
        raise OperationalError("terminating connection due to administrator command")

    for _ in range(quick_breaker.settings.failure_threshold + 1):
        context = HandlerContext(
            spec=spec, message_id=uuid.uuid4(), correlation_id="c", causation_id="",
            attempt=1, delivered=False,
        )  # fmt: skip
        with pytest.raises(OperationalError):
            circuit_breaker(DownstreamCalled(key="db"), context, database_restarting)
    assert (quick_breaker.state().state, quick_breaker.state().failures) == ("closed", 0)
