from django.apps import AppConfig


class OrderingConfig(AppConfig):
    name = "ordering"
    verbose_name = "Ordering"
    default_auto_field = "django.db.models.BigAutoField"
