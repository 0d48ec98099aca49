"""OpenTelemetry: one cancellation followed from the request, through the
command, the publish and the worker's handlers, to the e-mail they queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from mediator import publish, send
from mediator.messages import trace_context
from notifications.models import SentEmail
from ordering.commands import PlaceDemoOrder
from ordering.models import Order
from tests.support import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


_in_memory: tuple[Any, Any] | None = None


@pytest.fixture
def traced_here(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Tracing on in this process, into an in-memory exporter, for one test."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    global _in_memory
    if _in_memory is None:  # OpenTelemetry takes one global provider per process
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _in_memory = (provider, exporter)
    provider, exporter = _in_memory
    exporter.clear()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "in-memory")
    trace_context.enabled.cache_clear()
    DjangoInstrumentor().instrument(tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        CeleryInstrumentor().uninstrument()
        DjangoInstrumentor().uninstrument()
        monkeypatch.delenv("OTEL_TRACES_EXPORTER")
        trace_context.enabled.cache_clear()


def worker_spans(path: Path, trace_id: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    spans = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [span for span in spans if span["trace_id"] == trace_id]


def test_one_cancellation_is_one_trace_from_request_to_the_queued_email(
    celery_worker: Worker, client: Client, traced_here: Any, worker_logs: Path
) -> None:
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    with transaction.atomic():
        order: Order = send(PlaceDemoOrder(owner_id=alice.pk, sku="MUG-01", quantity=1))
    client.force_login(alice)
    traced_here.clear()

    response = client.post(reverse("orders:order-cancel", args=[order.pk]), {"reason": "x"})
    wait_for(
        lambda: SentEmail.objects.filter(subject__icontains="cancel").exists(),
        timeout=30, message="the cancellation e-mail",
    )  # fmt: skip

    here = [
        {
            "name": s.name,
            "trace_id": format(s.context.trace_id, "032x"),
            "span_id": format(s.context.span_id, "016x"),
            "parent_id": format(s.parent.span_id, "016x") if s.parent else None,
            "attributes": dict(s.attributes or {}),
        }
        for s in traced_here.get_finished_spans()
    ]
    [request] = [s for s in here if s["name"].startswith("POST")]
    trace_id = request["trace_id"]
    expected_in_worker = {
        "run/shipping.handlers.cancel_shipment",
        "handle shipping.handlers.cancel_shipment",
        "run/notifications.handlers.send_cancellation_notice",
        "handle notifications.handlers.send_cancellation_notice",
        "publish notifications.EmailQueued",
        "apply_async/notifications.handlers.send_email",
        "run/notifications.handlers.send_email",
        "handle notifications.handlers.send_email",
    }
    span_file = worker_logs / "spans.jsonl"
    there = wait_for(
        lambda: (found := worker_spans(span_file, trace_id))
        and expected_in_worker <= {s["name"] for s in found}
        and found,
        timeout=30, message="the worker's spans of this trace",
    )  # fmt: skip
    spans = [s for s in here if s["trace_id"] == trace_id] + there
    by_id = {s["span_id"]: s for s in spans}

    def path_to_root(name: str) -> list[str]:
        [span] = [s for s in spans if s["name"] == name]
        names = [span["name"]]
        while span["parent_id"] is not None:
            span = by_id[span["parent_id"]]  # a missing parent breaks the tree: KeyError
            names.append(span["name"])
        return names[::-1]

    request_name = request["name"]
    assert path_to_root("handle notifications.handlers.send_email") == [
        request_name,
        "handle ordering.handlers.cancel_order",
        "publish ordering.OrderCancelled",
        "apply_async/notifications.handlers.send_cancellation_notice",
        "run/notifications.handlers.send_cancellation_notice",
        "handle notifications.handlers.send_cancellation_notice",
        "publish notifications.EmailQueued",
        "apply_async/notifications.handlers.send_email",
        "run/notifications.handlers.send_email",
        "handle notifications.handlers.send_email",
    ]
    assert path_to_root("handle shipping.handlers.cancel_shipment") == [
        request_name,
        "handle ordering.handlers.cancel_order",
        "publish ordering.OrderCancelled",
        "apply_async/shipping.handlers.cancel_shipment",
        "run/shipping.handlers.cancel_shipment",
        "handle shipping.handlers.cancel_shipment",
    ]
    # Every handler span, here and in the worker, carries the request's correlation id.
    handle_spans = [s for s in spans if s["name"].startswith("handle")]
    assert len(handle_spans) == 4
    assert {s["attributes"]["mediator.correlation_id"] for s in handle_spans} == {
        response["X-Correlation-ID"]
    }


def test_a_task_the_relay_sends_later_still_joins_the_publishers_trace(
    celery_worker: Worker, traced_here: Any, worker_logs: Path
) -> None:
    from opentelemetry import trace

    from mediator.delivery.dispatch import BrokerDownPause
    from mediator.models import OutboxMessage
    from mediator.recovery.relay import relay_once
    from tests.mediator.helpers import RECORD, handled, new_key
    from tests.testapp.events import Pinged

    BrokerDownPause.until = float("inf")  # as if the broker were down at commit
    try:
        with trace.get_tracer("test").start_as_current_span("a request"), transaction.atomic():
            event_id = publish(Pinged(key=new_key()))
    finally:
        BrokerDownPause.until = 0.0
    row = OutboxMessage.objects.get(event_id=event_id)
    assert row.status == "pending"
    assert row.traceparent

    relayed = relay_once(grace_seconds=0)  # the relay, outside any span
    assert relayed.dispatched == 1
    wait_for(lambda: handled(event_id, RECORD), message="the relayed delivery")

    here = {s.name: s for s in traced_here.get_finished_spans()}
    root, published = here["a request"], here["publish testapp.Pinged"]
    sent = here[f"apply_async/{RECORD}"]
    assert published.parent.span_id == root.context.span_id
    assert sent.parent.span_id == published.context.span_id  # not a new trace
    trace_id = format(root.context.trace_id, "032x")
    there = wait_for(
        lambda: [s for s in worker_spans(worker_logs / "spans.jsonl", trace_id)
                 if s["name"] == f"run/{RECORD}"],
        message="the worker's span in the publisher's trace",
    )  # fmt: skip
    assert there[0]["parent_id"] == format(sent.context.span_id, "016x")
