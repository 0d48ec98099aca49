"""/healthz (the process answers) and /readyz (it can do its job), as JSON."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from config.celery import app as celery_app
from mediator.observability import selectors
from mediator.resilience import breaker


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {}
    ready = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        ready = False
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
        ready = False
    if checks["database"] == "ok":
        lag = selectors.outbox_lag_seconds()
        checks["outbox_pending"] = selectors.pending_count()
        checks["outbox_lag_seconds"] = round(lag, 1)
        checks["overdue_deliveries"] = selectors.overdue_deliveries()
        if lag > settings.READYZ_MAX_OUTBOX_LAG:
            ready = False
    # An open breaker means a downstream is failing, not that this process
    # cannot serve: it is reported, and readiness does not depend on it.
    try:
        checks["breakers"] = {s.name: s.state for s in breaker.all_states()}
    except Exception as exc:
        checks["breakers"] = f"error: {type(exc).__name__}"
    return JsonResponse({"status": "ok" if ready else "unavailable", **checks},
                        status=200 if ready else 503)  # fmt: skip
