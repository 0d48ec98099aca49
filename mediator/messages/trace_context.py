"""The W3C trace context that travels with a message, and spans around the
mediator's steps. Off unless the standard OTEL_* variables switch tracing on
(mediator.observability.tracing installs the provider); then nothing here
costs more than one flag check, and OpenTelemetry is imported only inside
the functions, once tracing is on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

TRACER_NAME = "mediator"


@cache
def enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return bool(exporters) and exporters != "none"


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
