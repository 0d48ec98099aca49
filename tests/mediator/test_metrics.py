"""Prometheus /metrics: counts from real worker processes, state read at scrape."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from mediator import send_after_commit
from tests.mediator.helpers import handled, new_key, poisoned
from tests.support import Worker, wait_for
from tests.testapp.commands import Probe

PROBE = "tests.testapp.handlers.probe"


def scrape(client: Client, **headers: str) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.django_db(transaction=True)
def test_metrics_add_up_the_workers_runs_retries_and_poisonings(
    celery_worker: Worker, client: Client
) -> None:
    before = scrape(client)
    with transaction.atomic():
        flaky = send_after_commit(Probe(key=new_key(), mode="fail-twice"))
        refused = send_after_commit(Probe(key=new_key(), mode="refuse"))
    wait_for(lambda: handled(flaky, PROBE), message="the flaky command")
    wait_for(lambda: poisoned(refused, PROBE), message="the refused command")
    # The counters are counted just after the commits waited for above.
    after = wait_for(
        lambda: (s := scrape(client))
        and value(s, "mediator_handler_runs_total", handler=PROBE, outcome="done")
        > value(before, "mediator_handler_runs_total", handler=PROBE, outcome="done")
        and s,
        message="the done run to be counted",
    )  # fmt: skip

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Counted in the worker's pool processes, read here: multiprocess mode works.
    assert delta("mediator_handler_runs_total", handler=PROBE, outcome="done") == 1
    assert delta("mediator_handler_runs_total", handler=PROBE, outcome="failed") == 3
    assert delta("mediator_handler_retries_total", handler=PROBE) == 2
    assert delta("mediator_handler_poisoned_total", handler=PROBE) == 1
    assert delta("mediator_handler_duration_seconds_count", handler=PROBE) == 4
    # Read from the database and Redis when scraped.
    assert value(after, "mediator_poisoned_open") >= 1
    assert ("mediator_outbox_pending", frozenset()) in after
    assert ("mediator_outbox_lag_seconds", frozenset()) in after
    state_key = ("mediator_breaker_state", frozenset({("breaker", "tests.downstream")}))
    assert after[state_key] in (0, 1, 2)


@pytest.mark.django_db
def test_metrics_ask_for_the_token_when_one_is_set(client: Client, settings: Any) -> None:
    settings.MEDIATOR = {**settings.MEDIATOR, "METRICS_TOKEN": "s3cret-token"}
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert scrape(client, Authorization="Bearer s3cret-token")
