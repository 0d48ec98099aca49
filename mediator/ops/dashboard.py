"""The operators' one-page view of the mediator, inside the admin (staff only:
mediator.urls wraps it in admin.site.admin_view)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from mediator.observability import graph, selectors
from mediator.resilience import breaker


def dashboard(request: HttpRequest) -> HttpResponse:
    since = timezone.now() - timedelta(hours=1)
    wiring = graph.event_map()
    try:
        breakers, breakers_error = breaker.all_states(), ""
    except Exception as exc:  # Redis down: say so, show the rest
        breakers, breakers_error = [], f"{type(exc).__name__}: {exc}"
    context = {
        **admin.site.each_context(request),
        "title": "Mediator dashboard",
        "pending": selectors.pending_count(),
        "lag_seconds": round(selectors.outbox_lag_seconds(), 1),
        "overdue": selectors.overdue_deliveries(),
        "events_per_type": selectors.events_per_type(since),
        "handlers": selectors.handler_counts(since),
        "event_map": wiring.handlers,
        "sagas": wiring.sagas,
        "saga_runs": selectors.unfinished_saga_runs(),
        "mermaid": graph.as_mermaid(wiring),
        "breakers": breakers,
        "breakers_error": breakers_error,
    }
    return TemplateResponse(request, "admin/mediator/dashboard.html", context)
