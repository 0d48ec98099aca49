"""The MEDIATOR settings dict, merged over documented defaults."""

from __future__ import annotations

from functools import cache
from importlib.util import find_spec
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # Retries of a failing handler (each handler can override these in @handles).
    "MAX_RETRIES": 5,  # retries after the first attempt; then the delivery is poisoned
    "RETRY_BACKOFF_BASE": 2.0,  # seconds before the first retry; doubles each time
    "RETRY_BACKOFF_MAX": 300.0,  # cap on one retry's countdown, seconds
    "RETRY_JITTER": True,  # countdown drawn from [c/2, c] so retries do not stampede
    # Exceptions that are retried; anything else a handler raises is poisoned at
    # once (a bug does not get better by retrying). Dotted paths.
    "RETRY_ON": [
        "builtins.OSError",  # ConnectionError, TimeoutError, smtplib.SMTPException, ...
        "django.db.utils.OperationalError",
        "django.db.utils.InterfaceError",
        "celery.exceptions.SoftTimeLimitExceeded",
        "mediator.exceptions.RetryableError",
    ],
    "QUEUE": None,  # default queue of handler tasks (None: Celery's default)
    # Publishing after commit must not hang the request when the broker is down.
    "PUBLISH_MAX_RETRIES": 2,
    "PUBLISH_RETRY_INTERVAL": 0.2,  # seconds between publish retries
    # RabbitMQ: seconds to wait for the broker's confirms of a batch; a task not
    # confirmed by then leaves its row pending for the relay.
    "PUBLISH_CONFIRM_TIMEOUT": 5.0,
    # After the broker refused a publish, leave this process's new events to
    # the relay for this long rather than make each request wait for it.
    "BROKER_DOWN_PAUSE_SECONDS": 5.0,
    # The relay dispatches rows still pending this long after they were written.
    "RELAY_GRACE_SECONDS": 5.0,
    "RELAY_BATCH_SIZE": 500,
    # An event no handler is registered for stays pending this long after it
    # was published before it is marked no_handlers for good: during a rolling
    # deploy an old process publishes events whose handlers only the new code
    # has, and a relay or worker on the new code sends them meanwhile. Keep it
    # above a deploy's length.
    "NO_HANDLERS_AFTER_SECONDS": 300.0,
    "RELAY_INTERVAL_SECONDS": 5.0,
    # A delivery dispatched this long ago that is neither done nor poisoned was
    # lost by the broker (restarted without persistence, flushed, failed over)
    # and is sent again; the inbox makes a needless resend a skipped duplicate.
    # Keep it above every handler's whole retry schedule (a system check warns).
    "REDELIVER_AFTER_SECONDS": 600.0,
    # publish() refuses payloads larger than this (bytes of JSON): a broker
    # message is not a place for documents.
    "MAX_PAYLOAD_BYTES": 64 * 1024,
    # Record "running" / "retrying" per delivery for the order timeline and the
    # dashboard (a write for a run that lasts, fails or is redelivered; none
    # for a quick first try on PostgreSQL). Off: they show "queued".
    "TRACK_PROGRESS": True,
    # A run still going after this many seconds is recorded as "running"
    # (mediator.worker.slow_runs); quicker ones write no progress row at all.
    # 0 records every run, at the cost of one write each.
    "RECORD_RUNNING_AFTER": 0.5,
    # The poisoned-task admin's "see also" links: a dotted path to a callable
    # (poisoned_task) -> [(url, label), ...]. The default links the event's
    # outbox row and the task in Flower; a project's adapter can add its own
    # pages (mediator.ops.links explains how).
    "ADMIN_LINKS": "mediator.ops.links.default_links",
    "FLOWER_URL": None,  # e.g. "http://127.0.0.1:5555"
    # Middleware around every handler run, outermost first
    # (mediator.handlers.pipeline). The inbox transaction is not one of them:
    # delivery always runs it innermost, around the handler.
    "BEHAVIOURS": [
        "mediator.observability.behaviours.log",
        "mediator.observability.behaviours.trace",
        # Prometheus figures, with the 'prometheus' extra installed.
        *(["mediator.observability.metrics.measure"] if find_spec("prometheus_client") else []),
        "mediator.resilience.behaviours.circuit_breaker",
        "mediator.handlers.behaviours.validate",
    ],
    # Circuit breakers of handlers declared with breaker=...: "default", then
    # per breaker name. FAILURE_THRESHOLD retryable failures in a row open it;
    # after RESET_TIMEOUT seconds one probe goes through; a probe that does not
    # report within PROBE_TIMEOUT seconds frees the slot for another.
    "BREAKERS": {"default": {"FAILURE_THRESHOLD": 5, "RESET_TIMEOUT": 30.0, "PROBE_TIMEOUT": 60.0}},
    # Where breakers keep their state. None: the Celery broker's URL, if it is
    # a Redis one (with a RabbitMQ broker, set this to a Redis URL).
    "BREAKER_REDIS_URL": None,
    # /metrics asks for "Authorization: Bearer <token>" when this is set.
    "METRICS_TOKEN": "",
    # How long finished rows are kept before `mediator.prune` (beat) and
    # `manage.py prune_mediator` delete them: keys and defaults in
    # mediator.retention.policy.DEFAULTS; a key given here overrides its default.
    "RETENTION": {},
}


@cache
def mediator_settings() -> dict[str, Any]:
    overrides = getattr(settings, "MEDIATOR", {})
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown MEDIATOR setting(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}"
        )
    return {**DEFAULTS, **overrides}


def reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """setting_changed receiver (connected in ready()): override_settings works."""
    if setting == "MEDIATOR":
        mediator_settings.cache_clear()
