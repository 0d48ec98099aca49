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
    "SECURE_PROXY_SSL_HEADER": settings.SECURE_PROXY_SSL_HEADER,
    "HSTS": [settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS,
             settings.SECURE_HSTS_PRELOAD],
    "LOGIN_THROTTLE": [settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds(),
                       settings.AXES_LOCKOUT_PARAMETERS],
    "QUEUES": [getattr(settings, "CELERY_TASK_" + name, "unset") for name in (
        "DEFAULT_QUEUE_TYPE", "DEFAULT_EXCHANGE_TYPE",
        "CREATE_MISSING_QUEUE_TYPE", "CREATE_MISSING_QUEUE_EXCHANGE_TYPE")],
}))
"""
# A plain-HTTP request that claims, in X-Forwarded-Proto, to have come over HTTPS.
FORGED_PROTO = """
import json, django
from django.test import Client
django.setup()
answers = {}
for path in ("/no-such-page/", "/healthz"):
    response = Client().get(path, headers={"X-Forwarded-Proto": "https"})
    answers[path] = [response.status_code, response.get("Location"),
                     response.get("Strict-Transport-Security")]
print(json.dumps(answers))
"""
GOOD_KEY = "k" * 50


def load(script: str = DUMP, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_with(script: str = DUMP, **env: str) -> dict:
    result = load(script, **env)
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


def test_production_trusts_no_forwarded_proto_and_commits_to_no_hsts_extras_by_default() -> None:
    s = settings_with(DJANGO_DEBUG="false", SECRET_KEY=GOOD_KEY)
    assert s["SECURE_PROXY_SSL_HEADER"] is None
    assert s["HSTS"] == [60 * 60 * 24 * 365, False, False]


def test_a_forged_forwarded_proto_is_redirected_to_https_not_believed() -> None:
    answers = settings_with(
        FORGED_PROTO, DJANGO_DEBUG="false", SECRET_KEY=GOOD_KEY, ALLOWED_HOSTS="testserver"
    )
    status, location, hsts = answers["/no-such-page/"]
    assert (status, location, hsts) == (301, "https://testserver/no-such-page/", None)
    # The health check asks over plain HTTP from inside the container.
    assert answers["/healthz"][0] == 200


def test_behind_a_tls_proxy_its_forwarded_proto_is_believed() -> None:
    answers = settings_with(
        FORGED_PROTO,
        DJANGO_DEBUG="false",
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="testserver",
        BEHIND_TLS_PROXY="true",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
    )
    status, location, hsts = answers["/no-such-page/"]
    assert (status, location) == (404, None)  # served, over "HTTPS"
    assert hsts == "max-age=31536000; includeSubDomains; preload"


def test_hsts_extras_are_opt_in_one_by_one() -> None:
    s = settings_with(
        DJANGO_DEBUG="false", SECRET_KEY=GOOD_KEY, SECURE_HSTS_INCLUDE_SUBDOMAINS="true"
    )
    assert s["HSTS"] == [60 * 60 * 24 * 365, True, False]
    assert settings_with(DJANGO_DEBUG="false", SECRET_KEY=GOOD_KEY, BEHIND_TLS_PROXY="yes")[
        "SECURE_PROXY_SSL_HEADER"
    ] == ["HTTP_X_FORWARDED_PROTO", "https"]


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


REDIRECTS = """
import json, django
django.setup()
from django.http import HttpResponse
from django.middleware.security import SecurityMiddleware
from django.test import RequestFactory
security = SecurityMiddleware(lambda request: HttpResponse("served"))
factory = RequestFactory(SERVER_NAME="localhost")
print(json.dumps({path: security(factory.get(path)).status_code
                  for path in ("/healthz", "/readyz", "/metrics", "/orders/", "/readyz/x")}))
"""


def test_plain_http_is_sent_to_https_except_the_probes_from_inside_the_network() -> None:
    """Compose's health checks (and a Prometheus scraper) call the web over
    plain HTTP, not through the TLS proxy: a redirect would fail them."""
    clean = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "config.settings"}
    env = {**clean, "DJANGO_DEBUG": "false", "SECRET_KEY": GOOD_KEY, "SECURE_SSL_REDIRECT": "true"}
    done = subprocess.run(
        [sys.executable, "-c", REDIRECTS], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "/healthz": 200, "/readyz": 200, "/metrics": 200, "/orders/": 301, "/readyz/x": 301,
    }  # fmt: skip


def test_login_throttling_is_on_by_default_and_tuned_from_the_environment() -> None:
    s = settings_with(DJANGO_DEBUG="false", SECRET_KEY=GOOD_KEY)
    assert s["LOGIN_THROTTLE"] == [5, 900.0, [["username", "ip_address"]]]
    s = settings_with(
        DJANGO_DEBUG="false", SECRET_KEY=GOOD_KEY, LOGIN_FAILURE_LIMIT="3",
        LOGIN_COOLOFF_MINUTES="0.5",
    )  # fmt: skip
    assert s["LOGIN_THROTTLE"][:2] == [3, 30.0]
