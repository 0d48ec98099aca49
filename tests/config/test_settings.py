"""Settings are read in a fresh interpreter per case: they are module-level code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

DUMP = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "DATABASE": {k: settings.DATABASES["default"].get(k)
                 for k in ("ENGINE", "NAME", "HOST", "PORT", "USER")},
    "BROKER": settings.CELERY_BROKER_URL,
    "EMAIL": [settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT,
              settings.EMAIL_FILE_PATH, settings.DEFAULT_FROM_EMAIL],
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "QUEUES": [getattr(settings, "CELERY_TASK_" + name, "unset") for name in (
        "DEFAULT_QUEUE_TYPE", "DEFAULT_EXCHANGE_TYPE",
        "CREATE_MISSING_QUEUE_TYPE", "CREATE_MISSING_QUEUE_EXCHANGE_TYPE")],
}))
"""
GOOD_KEY = "k" * 50


def load(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", DUMP],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_with(**env: str) -> dict:
    result = load(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_are_local_sqlite_and_local_redis() -> None:
    s = settings_with(DJANGO_DEBUG="true")
    assert s["DEBUG"] is True
    assert s["DATABASE"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["DATABASE"]["NAME"] == str(ROOT / "db.sqlite3")
    assert s["BROKER"] == "redis://127.0.0.1:6379/0"
    assert s["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]


@pytest.mark.parametrize("key", [None, "", "django-insecure-abc" + "x" * 40, "short"])
def test_debug_off_refuses_missing_or_default_secret_key(key: str | None) -> None:
    env = {"DJANGO_DEBUG": "false"}
    if key is not None:
        env["SECRET_KEY"] = key
    result = load(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


def test_debug_off_with_real_key_starts_with_secure_cookies() -> None:
    s = settings_with(DJANGO_DEBUG="false", SECRET_KEY=GOOD_KEY)
    assert s["DEBUG"] is False
    assert s["SESSION_COOKIE_SECURE"] is True


def test_bad_boolean_is_a_clear_error() -> None:
    result = load(DJANGO_DEBUG="maybe")
    assert result.returncode != 0
    assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr


def test_database_url_selects_postgresql() -> None:
    s = settings_with(
        DJANGO_DEBUG="true", DATABASE_URL="postgres://shop:pw@db.internal:6543/shopdb"
    )
    assert s["DATABASE"] == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shopdb",
        "HOST": "db.internal",
        "PORT": 6543,
        "USER": "shop",
    }


def test_celery_broker_url_overrides_redis_url_and_takes_amqp() -> None:
    s = settings_with(DJANGO_DEBUG="true", REDIS_URL="redis://r:6380/2")
    assert s["BROKER"] == "redis://r:6380/2"
    s = settings_with(
        DJANGO_DEBUG="true", REDIS_URL="redis://r:6380/2", CELERY_BROKER_URL="amqp://u:p@mq:5672//"
    )
    assert s["BROKER"] == "amqp://u:p@mq:5672//"


QUORUM = ["quorum", "topic", "quorum", "topic"]


@pytest.mark.parametrize(
    ("env", "queues"),
    [
        ({"CELERY_BROKER_URL": "amqp://u:p@mq:5672//"}, QUORUM),
        ({"CELERY_BROKER_URL": "pyamqp://u:p@mq:5672//"}, QUORUM),
        ({"CELERY_BROKER_URL": "amqp://u:p@mq:5672//", "CELERY_QUORUM_QUEUES": "false"}, None),
        ({"CELERY_BROKER_URL": "redis://r:6379/0"}, None),
        ({"REDIS_URL": "redis://r:6379/0", "CELERY_QUORUM_QUEUES": "true"}, None),
    ],
)
def test_quorum_queues_by_default_on_rabbitmq_only(
    env: dict[str, str], queues: list | None
) -> None:
    """Quorum task queues (and the topic exchanges Celery's delayed delivery
    needs) with an AMQP broker unless turned off; Redis has no queue types."""
    s = settings_with(DJANGO_DEBUG="true", **env)
    assert s["QUEUES"] == (queues or ["unset"] * 4)


def test_allowed_hosts_and_email_from_environment() -> None:
    s = settings_with(
        DJANGO_DEBUG="true",
        ALLOWED_HOSTS="shop.example.com, .example.org",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="smtp.example.com",
        EMAIL_PORT="2525",
        EMAIL_FILE_PATH="/tmp/mails",
        DEFAULT_FROM_EMAIL="Shop <noreply@example.com>",
    )
    assert s["ALLOWED_HOSTS"] == ["shop.example.com", ".example.org"]
    assert s["EMAIL"] == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.com",
        2525,
        "/tmp/mails",
        "Shop <noreply@example.com>",
    ]
