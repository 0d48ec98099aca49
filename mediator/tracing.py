"""OpenTelemetry, off unless the standard OTEL_* variables switch it on.

OTEL_TRACES_EXPORTER=otlp (with OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME,
...) or =console turns it on; unset, "none" or OTEL_SDK_DISABLED=true leave it
off, and then nothing here costs more than one flag check. When on, the
maintained instrumentations trace Django requests and Celery tasks, and the
mediator adds a span per publish and per handler run, and carries the trace
context in the envelope, so a task the relay sends minutes later still joins
the request's trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from django.utils.module_loading import import_string

logger = logging.getLogger("mediator.tracing")

TRACER_NAME = "mediator"


@cache
def enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return bool(exporters) and exporters != "none"


def _exporter(name: str) -> Any:
    """An exporter by its standard name (otlp, console, or any installed one's
    entry point), or by dotted path "package.module.Class"."""
    if name in ("otlp", "otlp_proto_http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if "." in name:
        return import_string(name)()
    from importlib.metadata import entry_points

    for entry in entry_points(group="opentelemetry_traces_exporter", name=name):
        return entry.load()()
    raise ValueError(f"OTEL_TRACES_EXPORTER names an unknown exporter {name!r}")


def setup() -> bool:
    """Install a tracer provider and the Django and Celery instrumentations if
    OTEL_* asks for them. Called once per process, from the app's ready()."""
    if not enabled():
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create())  # reads OTEL_SERVICE_NAME etc.
    for name in os.environ["OTEL_TRACES_EXPORTER"].split(","):
        if name.strip():
            provider.add_span_processor(BatchSpanProcessor(_exporter(name.strip())))
    trace.set_tracer_provider(provider)
    _flush_when_pool_process_exits(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    logger.info("OpenTelemetry tracing on: exporters %s", os.environ["OTEL_TRACES_EXPORTER"])
    return True


def _flush_when_pool_process_exits(provider: Any) -> None:
    """Celery's pool processes end with os._exit, so atexit never runs the
    provider's shutdown: spans still in the batch would be lost."""
    from celery.signals import worker_process_shutdown

    def flush(**_: Any) -> None:
        provider.shutdown()

    worker_process_shutdown.connect(flush, weak=False)


def current_traceparent() -> str:
    """The W3C traceparent of the current span ("" when tracing is off)."""
    if not enabled():
        return ""
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent", "")[:64]


@contextmanager
def span(name: str, *, traceparent: str = "", **attributes: Any) -> Iterator[None]:
    """A span around a mediator step; its parent is `traceparent` if given,
    else the current span. Does nothing when tracing is off."""
    if not enabled():
        yield
        return
    from opentelemetry import context, trace
    from opentelemetry.propagate import extract

    parent = extract({"traceparent": traceparent}) if traceparent else context.get_current()
    tracer = trace.get_tracer(TRACER_NAME)
    clean = {k: v for k, v in attributes.items() if v not in (None, "")}
    with tracer.start_as_current_span(name, context=parent, attributes=clean):
        yield


@contextmanager
def within(traceparent: str) -> Iterator[None]:
    """Make `traceparent` the current trace context (for sending a stored
    event's tasks: Celery's instrumentation injects what is current)."""
    if not enabled() or not traceparent:
        yield
        return
    from opentelemetry import context
    from opentelemetry.propagate import extract

    token = context.attach(extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        context.detach(token)
