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

from mediator.messages.context import LOG_FIELDS as FIELDS
from mediator.messages.context import current_correlation_id, current_log_fields


class DeliveryContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        run = current_log_fields()
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
