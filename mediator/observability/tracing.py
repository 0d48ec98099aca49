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
from importlib.metadata import entry_points
from typing import Any

from celery.signals import worker_process_shutdown
from django.utils.module_loading import import_string

from mediator.extras import require
from mediator.messages.trace_context import enabled

logger = logging.getLogger("mediator.tracing")


def _exporter(name: str) -> Any:
    """An exporter by its standard name (otlp, console, or any installed one's
    entry point), or by dotted path "package.module.Class"."""
    if name in ("otlp", "otlp_proto_http"):  # exporters load only when named
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if "." in name:
        return import_string(name)()
    for entry in entry_points(group="opentelemetry_traces_exporter", name=name):
        return entry.load()()
    raise ValueError(f"OTEL_TRACES_EXPORTER names an unknown exporter {name!r}")


def setup() -> bool:
    """Install a tracer provider and the Django and Celery instrumentations if
    OTEL_* asks for them. Called once per process, from the app's ready()."""
    if not enabled():
        return False
    # Imported only when tracing is on: the SDK costs startup time otherwise,
    # and it comes with the 'otel' extra.
    require("opentelemetry.sdk", "otel", "Tracing (OTEL_TRACES_EXPORTER is set)")
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

    def flush(**_: Any) -> None:
        provider.shutdown()

    worker_process_shutdown.connect(flush, weak=False)
