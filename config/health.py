"""/healthz (the process answers) and /readyz (it can do its job), as JSON.

/readyz is public: a load balancer or compose's health check asks it without
credentials. So its answer names only the checks and whether each passed;
the figures behind them (outbox lag and counts, breaker states, exception
class names) go to a request that sends the METRICS_TOKEN bearer token, or
to a logged-in staff user.

It is also asked most often exactly when the broker is down, so it must stay
cheap then: the broker check is the answer of one connection attempt (with a
connect timeout of READYZ_BROKER_TIMEOUT), reused for READYZ_BROKER_CHECK_SECONDS
by every request this process serves. A flood of probes makes at most one
connection attempt per interval and process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from config.celery import app as celery_app
from mediator.observability import selectors
from mediator.ops.views import has_metrics_token
from mediator.resilience import breaker

OK, FAILING, UNKNOWN = "ok", "failing", "unknown"


class BrokerProbe:
    """Whether the broker takes a connection, asked at most once per interval."""

    def __init__(
        self, *, url: str | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.url = url  # None: the Celery app's broker URL
        self.clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._error: str | None = None

    def error(self) -> str | None:
        """None if the broker took the last connection attempt, else the
        attempt's exception class name. Concurrent callers wait for the one
        attempt in flight (bounded by its timeout) rather than make their own."""
        interval = float(settings.READYZ_BROKER_CHECK_SECONDS)
        with self._lock:
            if self._checked_at is None or self.clock() - self._checked_at >= interval:
                self._error = self._connect(float(settings.READYZ_BROKER_TIMEOUT))
                self._checked_at = self.clock()
            return self._error

    def forget(self) -> None:
        """The next error() asks the broker again."""
        with self._lock:
            self._checked_at = None

    def _connect(self, timeout: float) -> str | None:
        options = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
        try:
            with celery_app.connection_for_write(
                self.url, connect_timeout=timeout, transport_options=options
            ) as broker:
                # No retry: one attempt, then the cached answer until the next interval.
                broker.ensure_connection(max_retries=0, timeout=math.ceil(timeout))
        except Exception as exc:
            return type(exc).__name__
        return None


broker_probe = BrokerProbe()


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    errors: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = OK
    except Exception as exc:
        checks["database"], errors["database"] = FAILING, type(exc).__name__
    broker_error = broker_probe.error()
    checks["broker"] = OK if broker_error is None else FAILING
    if broker_error is not None:
        errors["broker"] = broker_error
    lag: float | None = None
    if checks["database"] == OK:
        lag = selectors.outbox_lag_seconds()
        checks["outbox"] = OK if lag <= settings.READYZ_MAX_OUTBOX_LAG else FAILING
    else:
        checks["outbox"] = UNKNOWN
    ready = all(state == OK for state in checks.values())
    body: dict[str, Any] = {"status": "ok" if ready else "unavailable", **checks}
    if _may_see_details(request):
        body["details"] = _details(lag, errors)
    return JsonResponse(body, status=200 if ready else 503)


def _may_see_details(request: HttpRequest) -> bool:
    if has_metrics_token(request):
        return True
    try:
        return bool(request.user.is_staff)
    except DatabaseError:  # the session cannot be read: not staff, as far as we know
        return False


def _details(lag: float | None, errors: dict[str, str]) -> dict[str, Any]:
    details: dict[str, Any] = {"errors": errors}
    if lag is not None:
        details["outbox_lag_seconds"] = round(lag, 1)
        details["outbox_pending"] = selectors.pending_count()
        details["overdue_deliveries"] = selectors.overdue_deliveries()
    # An open breaker means a downstream is failing, not that this process
    # cannot serve: it is reported, and readiness does not depend on it.
    try:
        details["breakers"] = {s.name: s.state for s in breaker.all_states()}
    except Exception as exc:
        details["breakers"] = {}
        errors["breakers"] = type(exc).__name__
    return details
