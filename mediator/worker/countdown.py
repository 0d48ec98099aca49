"""Retry countdowns the broker can schedule.

With quorum queues on RabbitMQ, Celery keeps a countdown in the broker
(native delayed delivery: the message waits in the celery_delayed_* queues)
and counts it in whole seconds. Celery 5.7 truncates the countdown to an
integer and kombu refuses 0 (`calculate_routing_key`: "countdown must be a
positive number"), which `Task.retry()` turns into `Reject(requeue=False)`:
a retry due in under a second would never be scheduled, and a death retried
after `default_retry_delay` under a second would not count. So there the
countdown is rounded up to whole seconds; on every other broker it is kept.
"""

from __future__ import annotations

import math
from functools import cache

from celery import Celery
from celery.app import app_or_default
from celery.utils.quorum_queues import detect_quorum_queues


@cache
def _delayed_in_broker(app: Celery) -> bool:
    driver = app.connection_for_write().transport.driver_type  # no connection is opened
    return detect_quorum_queues(app, driver)[0]


def broker_countdown(seconds: float, app: Celery | None = None) -> float:
    """`seconds`, as a countdown the app's broker will schedule."""
    if seconds > 0 and _delayed_in_broker(app_or_default(app)):
        return float(math.ceil(seconds))
    return seconds
