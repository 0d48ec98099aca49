from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from config.health import healthz, readyz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="orders:order-list", permanent=False)),
    path("orders/", include("portal.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The mediator's dashboard, breaker button and /metrics; before the admin.
    path("", include("mediator.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
