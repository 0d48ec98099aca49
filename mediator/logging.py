"""Every log line written during a handler run carries the run's context.

`DeliveryContextFilter` (attach it to a logging handler) adds event_id,
event_type, handler, attempt and correlation_id to each record ("-" outside a
run), for formatters that name them, and `delivery`: all five as
" key=value" pairs during a run, "" outside one, for a plain text format. It
covers the handler's own loggers and Celery's, not only the mediator's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

FIELDS = ("event_id", "event_type", "handler", "attempt", "correlation_id")

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
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, run[name] if run else "-")
        if not hasattr(record, "delivery"):
            record.delivery = "".join(f" {k}={run[k]}" for k in FIELDS) if run else ""
        return True


def configure_worker_logging(**_: Any) -> None:
    """Celery's setup_logging signal: use Django's LOGGING in the worker too,
    instead of Celery's own format (which would drop the fields above)."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
