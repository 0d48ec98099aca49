"""Operators' endpoints: Prometheus's /metrics, and closing a breaker by hand."""

from __future__ import annotations

import hmac
from typing import cast

from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST

from mediator.conf import mediator_settings
from mediator.observability import metrics
from mediator.resilience import breaker


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. With MEDIATOR["METRICS_TOKEN"] set, a scrape must send
    `Authorization: Bearer <token>`; without it, /metrics is open (keep it
    off the public internet, as is usual for /metrics)."""
    token = str(mediator_settings()["METRICS_TOKEN"] or "")
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return HttpResponse("metrics need a bearer token\n", status=401)
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)


@require_POST
def close_breaker(request: HttpRequest, name: str) -> HttpResponse:
    """The dashboard's "Close" button (staff only: mediator.urls wraps it in
    admin_view; closing needs the change permission on poisoned tasks)."""
    if not request.user.has_perm("mediator.change_poisonedtask"):
        return HttpResponse("You may not close breakers.", status=403)
    if name not in breaker.breaker_names():
        messages.error(request, f"There is no circuit breaker named {name!r}.")
    elif breaker.Breaker(name).close():
        _log_closed(request, name)
        messages.success(
            request, f"Circuit breaker {name!r} is closed: its handlers' tasks run again."
        )
    else:
        messages.error(request, f"Could not reach Redis to close circuit breaker {name!r}.")
    return HttpResponseRedirect(reverse("mediator-dashboard"))


def _log_closed(request: HttpRequest, name: str) -> None:
    """The admin's history of who did what: a breaker is no model row, so the
    entry has no content type; its object id is the breaker's name."""
    LogEntry.objects.create(
        user_id=cast(int, request.user.pk),  # admin_view: a logged-in user
        content_type=None,
        object_id=name,
        object_repr=f"circuit breaker {name}"[:200],
        action_flag=CHANGE,
        change_message=f"Closed circuit breaker {name!r} by hand.",
    )
