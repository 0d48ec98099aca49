"""Circuit breakers: state shared by real worker processes through a real Redis."""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import pytest
import redis
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from mediator import publish
from mediator.breaker import KEY_PREFIX, Breaker
from mediator.models import PoisonedTask
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
        timeout=4, message="every task to be deferred while the breaker is open",
    )  # fmt: skip
    assert len(calls(downstream)) == 3
    assert breaker.state().state == "open"

    downstream.delete("downstream:down")  # the service recovers during the cool-down
    for event_id, key in zip([first, *others], keys, strict=True):
        wait_for(partial(handled, event_id, HANDLER), timeout=30, message=f"{key} done")

    made = calls(downstream)
    probe = made[3]
    assert probe.ok
    assert probe.start - made[2].end >= 4.5  # no call during the 5 s cool-down
    # The probe went alone: no other call started before it ended, in any process.
    assert all(call.start >= probe.end for call in made[4:])
    assert [c.key for c in made].count("first") == 4
    assert sorted(c.key for c in made[3:]) == sorted(keys)  # each once, all successful
    assert all(call.ok for call in made[3:])

    # "first" failed 3 times (max_retries=3 allows 4 attempts) and was deferred
    # more often than that, yet it succeeded on its 4th attempt: deferrals
    # spent no retries.
    deferrals = chain("first").count("outer:error:CircuitOpen")
    assert deferrals >= 2
    assert any(step.startswith("outer:before:4:") for step in chain("first"))
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
    for _ in range(3):
        breaker.record_failure(breaker.before_call())
    assert breaker.state().state == "open"

    assert client.get("/readyz").json()["breakers"][DOWNSTREAM] == "open"

    staff = User.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(staff)
    page = client.get(reverse("mediator-dashboard")).content.decode()
    assert f'data-breaker="{DOWNSTREAM}"' in page
    assert '<td class="state">open</td>' in page
    close = reverse("mediator-close-breaker", args=[DOWNSTREAM])
    assert f'action="{close}"' in page

    response = client.post(close, follow=True)
    assert f"Circuit breaker {DOWNSTREAM!r} is closed" in html.unescape(response.content.decode())
    assert breaker.state().state == "closed"
    assert client.get("/readyz").json()["breakers"][DOWNSTREAM] == "closed"

    unknown = client.post(reverse("mediator-close-breaker", args=["nope"]), follow=True)
    assert "There is no circuit breaker named 'nope'" in html.unescape(unknown.content.decode())


@pytest.mark.django_db
def test_closing_a_breaker_needs_staff_with_change_permission(
    client: Client, downstream: redis.Redis
) -> None:
    breaker = Breaker(DOWNSTREAM)
    for _ in range(3):
        breaker.record_failure(breaker.before_call())
    close = reverse("mediator-close-breaker", args=[DOWNSTREAM])
    assert client.post(close).status_code == 302  # to the admin login
    viewer = User.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    client.force_login(viewer)
    assert client.post(close).status_code == 403
    assert breaker.state().state == "open"
