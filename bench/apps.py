from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Events, handlers and raw tasks that do as little as possible, so a
    benchmark measures the mediator and Celery, not the work."""

    name = "bench"
    default_auto_field = "django.db.models.BigAutoField"
