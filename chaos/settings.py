"""The production settings, with fast retries and short bounds so a soak test
of a few minutes goes through many retry, redelivery and recovery cycles."""

import os

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "chaos-soak-test-only-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")

from config.settings import *  # noqa: F403
from config.settings import CELERY_BROKER_TRANSPORT_OPTIONS, INSTALLED_APPS, MEDIATOR

INSTALLED_APPS = [*INSTALLED_APPS, "chaos"]
EMAIL_BACKEND = "chaos.mail.LedgerBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIATOR = {
    **MEDIATOR,
    "MAX_RETRIES": 6,
    "RETRY_BACKOFF_BASE": 0.2,
    "RETRY_BACKOFF_MAX": 2.0,
    "RELAY_GRACE_SECONDS": 2.0,
    "RELAY_INTERVAL_SECONDS": 1.0,
    "REDELIVER_AFTER_SECONDS": 20.0,
}
# A killed worker's unacked messages come back after this (kombu restores them).
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "visibility_timeout": 30}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
