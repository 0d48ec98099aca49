"""/metrics, in Prometheus's text format (the 'prometheus' extra)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from mediator.conf import mediator_settings
from mediator.observability import metrics
from mediator.ops.views import has_metrics_token


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. With MEDIATOR["METRICS_TOKEN"] set, a scrape must send
    `Authorization: Bearer <token>`; without it, /metrics is open (keep it
    off the public internet, as is usual for /metrics)."""
    if mediator_settings()["METRICS_TOKEN"] and not has_metrics_token(request):
        return HttpResponse("metrics need a bearer token\n", status=401)
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
