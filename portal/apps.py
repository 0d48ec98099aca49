from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The pages people use. Composes what several apps know about an order
    (reads only); every change goes through the owning app's services."""

    name = "portal"
    default_auto_field = "django.db.models.BigAutoField"
