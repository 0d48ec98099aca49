"""Prometheus metrics of the mediator, served at /metrics (mediator.ops.views).

Counters are counted where things happen (in worker pool processes, mostly);
set PROMETHEUS_MULTIPROC_DIR (`make run` does) so the web process can add up
every process's counts. Outbox, poison and breaker figures are read from the
database and Redis when scraped, so they are right whichever process answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from django.db import transaction

from mediator.extras import missing

try:
    from prometheus_client import (
        REGISTRY,
        CollectorRegistry,
        Counter,
        Histogram,
        generate_latest,
    )
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.registry import Collector
except ImportError as exc:
    raise missing("prometheus", "Metrics (/metrics and the measure behaviour)") from exc

from mediator.exceptions import Deferred
from mediator.handlers.pipeline import CallNext, HandlerContext
from mediator.messages.base import Message
from mediator.observability import selectors
from mediator.resilience import breaker
from mediator.signals import (
    breaker_transitioned,
    delivery_deferred,
    delivery_poisoned,
    delivery_retrying,
    saga_finished,
)

HANDLER_RUNS = Counter(
    "mediator_handler_runs",
    "Handler runs by outcome: done, duplicate (skipped by the inbox), failed, deferred.",
    ["handler", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "mediator_handler_duration_seconds",
    "Time in the handler and the behaviours inside the metrics behaviour.",
    ["handler"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter("mediator_handler_retries", "Retries scheduled after a failure.", ["handler"])
DEFERRALS = Counter(
    "mediator_handler_deferrals",
    "Runs put off without spending a retry (reason: breaker or deferred).",
    ["handler", "reason"],
)
POISONED = Counter("mediator_handler_poisoned", "Deliveries poisoned.", ["handler"])
SAGA_RUNS_FINISHED = Counter(
    "mediator_saga_runs_finished", "Saga runs ended, by outcome.", ["saga", "outcome"]
)
BREAKER_TRANSITIONS = Counter(
    "mediator_breaker_transitions", "Circuit breaker state changes.", ["breaker", "to"]
)

BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def _count_retry(*, handler: str, **_: Any) -> None:
    RETRIES.labels(handler).inc()


def _count_deferral(*, handler: str, reason: str, **_: Any) -> None:
    DEFERRALS.labels(handler, reason).inc()


def _count_poisoned(*, handler: str, **_: Any) -> None:
    # Sent in the transaction that writes the row: count it once that commits.
    transaction.on_commit(lambda: POISONED.labels(handler).inc())


def _count_saga_finished(*, saga: str, state: str, **_: Any) -> None:
    transaction.on_commit(lambda: SAGA_RUNS_FINISHED.labels(saga, state).inc())


def _count_breaker_transition(*, breaker: str, after: str, **_: Any) -> None:
    BREAKER_TRANSITIONS.labels(breaker, after).inc()


def connect() -> None:
    """Count what the layers below signal (called from MediatorConfig.ready())."""
    for signal, receiver in (
        (delivery_retrying, _count_retry),
        (delivery_deferred, _count_deferral),
        (delivery_poisoned, _count_poisoned),
        (saga_finished, _count_saga_finished),
        (breaker_transitioned, _count_breaker_transition),
    ):
        signal.connect(receiver, weak=False, dispatch_uid=f"mediator.metrics.{receiver.__name__}")


class StateCollector(Collector):
    """Figures read when scraped: outbox backlog and lag, open poisoned tasks,
    breaker states, unfinished saga runs."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "mediator_outbox_pending", "Outbox rows not yet sent.", value=selectors.pending_count()
        )
        yield GaugeMetricFamily(
            "mediator_outbox_lag_seconds",
            "Age of the oldest outbox row not yet sent.",
            value=selectors.outbox_lag_seconds(),
        )
        yield GaugeMetricFamily(
            "mediator_poisoned_open",
            "Poisoned tasks waiting for an operator.",
            value=selectors.open_poisoned_count(),
        )
        state = GaugeMetricFamily(
            "mediator_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            labels=["breaker"],
        )
        failures = GaugeMetricFamily(
            "mediator_breaker_failures",
            "Failures in a row a closed breaker has counted.",
            labels=["breaker"],
        )
        try:
            states = breaker.all_states()
        except Exception:  # Redis down: no breaker figures rather than no metrics
            states = []
        for s in states:
            state.add_metric([s.name], BREAKER_STATE_VALUES.get(s.state, 0))
            failures.add_metric([s.name], s.failures)
        yield state
        yield failures
        runs = GaugeMetricFamily(
            "mediator_saga_runs_unfinished",
            "Saga runs running, compensating or stuck (stuck ones wait for an operator).",
            labels=["saga", "state"],
        )
        for saga, run_state, count in selectors.unfinished_saga_runs():
            runs.add_metric([saga, run_state], count)
        yield runs


def exposition() -> bytes:
    """The text a scrape gets: every process's counters if multiprocess mode
    is on, else this process's, then the state read now."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    state = CollectorRegistry()
    state.register(StateCollector())
    return generate_latest(counted) + generate_latest(state)


def measure(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """The behaviour that counts runs by outcome, and times them."""
    started = time.perf_counter()
    try:
        result = call_next()
    except Deferred:
        HANDLER_RUNS.labels(context.handler, "deferred").inc()
        raise  # not run: no duration
    except Exception:
        HANDLER_RUNS.labels(context.handler, "failed").inc()
        HANDLER_SECONDS.labels(context.handler).observe(time.perf_counter() - started)
        raise
    HANDLER_SECONDS.labels(context.handler).observe(time.perf_counter() - started)
    HANDLER_RUNS.labels(context.handler, "duplicate" if context.duplicate else "done").inc()
    return result
