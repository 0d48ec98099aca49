from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class MediatorConfig(AppConfig):
    name = "mediator"
    verbose_name = "Mediator"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # checks and receivers of signals
        from mediator import checks, saga_runner, tasks, tracing  # noqa: F401

        # Every installed app's handlers.py and sagas.py, so @handles and the
        # sagas' step tasks are registered in web and worker alike.
        autodiscover_modules("handlers", "sagas")
        tracing.setup()
