from django.apps import AppConfig


class ChaosConfig(AppConfig):
    name = "chaos"
    verbose_name = "Chaos soak test"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chaos.faults import inject_faults

        inject_faults()
