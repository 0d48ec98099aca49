"""What MediatorConfig.ready() switches on, once the app registry is ready.

The top of the layers (the app shell): it may import any of them. Kept out
of apps.py because Django imports apps.py before any model can be imported,
and most of what is connected here reaches a model.
"""

from importlib import import_module

from django.conf import settings
from django.core import checks
from django.core.signals import setting_changed
from django.utils.module_loading import autodiscover_modules, import_string

from mediator import conf
from mediator.extras import installed
from mediator.handlers import pipeline
from mediator.observability import tracing
from mediator.ops.checks import check_migrations, check_wiring
from mediator.recovery import sweep  # noqa: F401  (registers the beat task)
from mediator.resilience import breaker
from mediator.retention import prune  # noqa: F401  (registers the beat task)
from mediator.sagas import runner
from mediator.worker import receivers, tasks


def connect() -> None:
    for reset in (
        conf.reset_on_setting_changed,
        pipeline.reset_on_setting_changed,
        breaker.reset_on_setting_changed,
    ):
        setting_changed.connect(reset, dispatch_uid=f"{reset.__module__}.reset")
    checks.register(check_wiring, "mediator")
    checks.register(check_migrations, "mediator")
    # Every installed app's handlers.py and sagas.py, so @handles and the
    # sagas register in web and worker alike; then the sagas' step handlers,
    # then a Celery task for every handler (and for later ones).
    autodiscover_modules("handlers", "sagas")
    if uses_mediator_tasks_backend():
        autodiscover_modules("tasks")
    runner.connect()
    tasks.connect()
    receivers.connect()
    if installed("prometheus"):  # the metrics module needs it
        import_module("mediator.observability.metrics").connect()
    tracing.setup()


def uses_mediator_tasks_backend() -> bool:
    """Is one of settings.TASKS the mediator's backend (mediator.tasks_backend)?
    Then every app's tasks.py is imported here, as handlers.py is: the relay
    must know a task's message type to send it, and a worker its Celery task
    to run it, before anything in that process enqueues one."""
    for params in getattr(settings, "TASKS", {}).values():
        try:
            backend = import_string(params["BACKEND"])
        except (ImportError, KeyError, TypeError):
            continue  # django-tasks reports a backend it cannot load
        if getattr(backend, "is_mediator_backend", False):
            return True
    return False
