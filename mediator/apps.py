from django.apps import AppConfig


class MediatorConfig(AppConfig):
    name = "mediator"
    verbose_name = "Mediator"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Not at the top: Django imports this module before models can be
        # imported, and the wiring reaches models (Django's own pattern for
        # connecting signals in ready()).
        from mediator import wiring

        wiring.connect()
