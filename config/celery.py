import logging.config
import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Workers log through Django's LOGGING (one format, with the delivery context
# of mediator.observability.logging), instead of Celery's own format.
@setup_logging.connect
def _use_django_logging(**_: object) -> None:
    from django.conf import settings  # the worker's settings are loaded by now

    logging.config.dictConfig(settings.LOGGING)


@app.task(name="config.ping")
def ping() -> str:
    """A task with no side effect: smoke tests and health checks use it."""
    return "pong"
