"""The mediator's views, for a project's root URLconf:

    urlpatterns: list[URLPattern] = [
        path("", include("mediator.urls")),  # before admin.site.urls
        path("admin/", admin.site.urls),
        ...
    ]

It serves the dashboard and the breakers' "Close" button under
/admin/mediator/ (staff only, through the admin's login), and /metrics
(Prometheus; MEDIATOR["METRICS_TOKEN"] guards it). Include it before
admin.site.urls, whose catch-all would answer /admin/mediator/dashboard/
with a 404.
"""

from importlib import import_module

from django.contrib import admin
from django.urls import URLPattern, path

from mediator.extras import installed
from mediator.ops.dashboard import dashboard
from mediator.ops.views import close_breaker

urlpatterns: list[URLPattern] = [
    path(
        "admin/mediator/dashboard/",
        admin.site.admin_view(dashboard),
        name="mediator-dashboard",
    ),
    path(
        "admin/mediator/breakers/<str:name>/close/",
        admin.site.admin_view(close_breaker),
        name="mediator-close-breaker",
    ),
]
if installed("prometheus"):  # /metrics comes with the 'prometheus' extra
    metrics_view = import_module("mediator.ops.metrics_view").metrics_view
    urlpatterns.append(path("metrics", metrics_view, name="metrics"))
