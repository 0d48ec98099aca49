"""Operators' endpoints: closing a breaker by hand, and the token /metrics
and /readyz's details ask for."""

from __future__ import annotations

import hmac
from typing import cast

from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from mediator.conf import mediator_settings
from mediator.resilience import breaker


def has_metrics_token(request: HttpRequest) -> bool:
    """The request sends `Authorization: Bearer <MEDIATOR["METRICS_TOKEN"]>`
    (False while no token is set: nobody has it then)."""
    token = str(mediator_settings()["METRICS_TOKEN"] or "")
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(sent.encode(), token.encode())


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
