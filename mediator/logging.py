"""Every log line written during a handler run carries the run's context.

`DeliveryContextFilter` (attach it to a logging handler) adds event_id,
event_type, handler, attempt, correlation_id and causation_id to each record
("-" outside a run), for formatters that name them, and `delivery`: all six
as " key=value" pairs during a run, " correlation_id=..." while serving a
request, "" otherwise, for a plain text format. It covers the handler's own
loggers and Celery's, not only the mediator's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from mediator.context import current_correlation_id

FIELDS = ("event_id", "event_type", "handler", "attempt", "correlation_id", "causation_id")

_run: ContextVar[dict[str, Any] | None] = ContextVar("mediator_log_context", default=None)


@contextmanager
def delivery_log_context(**fields: Any) -> Iterator[None]:
    token = _run.set({k: fields.get(k, "-") for k in FIELDS})
    try:
        yield
    finally:
        _run.reset(token)


class DeliveryContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        run = _run.get()
        if run is None:
            correlation_id = current_correlation_id()
            for name in FIELDS:
                if not hasattr(record, name):
                    setattr(record, name, "-")
            if correlation_id and getattr(record, "correlation_id", "-") == "-":
                record.correlation_id = correlation_id
            if not hasattr(record, "delivery"):
                record.delivery = f" correlation_id={correlation_id}" if correlation_id else ""
            return True
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, run[name])
        if not hasattr(record, "delivery"):
            record.delivery = "".join(f" {k}={run[k]}" for k in FIELDS)
        return True


def configure_worker_logging(**_: Any) -> None:
    """Celery's setup_logging signal: use Django's LOGGING in the worker too,
    instead of Celery's own format (which would drop the fields above)."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
