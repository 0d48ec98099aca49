from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from config.health import healthz, readyz
from mediator.dashboard import dashboard
from mediator.views import close_breaker, metrics_view

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="orders:order-list", permanent=False)),
    path("orders/", include("portal.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
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
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]
