from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class MediatorConfig(AppConfig):
    name = "mediator"
    verbose_name = "Mediator"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mediator import checks, tasks, tracing  # noqa: F401  (checks, signal receivers)

        # Every installed app's handlers.py, so @handles runs in web and worker alike.
        autodiscover_modules("handlers")
        tracing.setup()
