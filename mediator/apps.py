from django.apps import AppConfig


class MediatorConfig(AppConfig):
    name = "mediator"
    verbose_name = "Mediator"
    default_auto_field = "django.db.models.BigAutoField"
