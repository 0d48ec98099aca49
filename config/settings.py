"""Settings for every environment, all read from environment variables.

Local development needs nothing set (`make run` sets DJANGO_DEBUG=true). With
DEBUG off the process refuses to start without a real SECRET_KEY.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)

INSECURE_SECRET_KEY = "django-insecure-local-development-only-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random value "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or set DJANGO_DEBUG=true for local development."
        )
    SECRET_KEY = INSECURE_SECRET_KEY
elif not DEBUG and (SECRET_KEY.startswith("django-insecure") or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "SECRET_KEY is a default or too short (under 32 characters) while DEBUG is off; "
        "set a long random SECRET_KEY."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "axes",
    "mediator",
    "ordering",
    "shipping",
    "notifications",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mediator.ops.middleware.CorrelationIdMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str) -> dict[str, Any]:
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_health_checks=True))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web process read while a worker writes; IMMEDIATE makes a
        # writing transaction take the lock up front instead of failing on upgrade.
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    # Kept open this long by web requests and by worker tasks alike
    # (mediator.worker.connections); 0 opens one per request or task.
    config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    return config


DATABASES = {"default": _database(env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- Login throttling (django-axes), on the admin's and the customers' login
# alike: after LOGIN_FAILURE_LIMIT failed logins for one username from one
# address, that pair gets a 429 page for LOGIN_COOLOFF_MINUTES. The address is
# REMOTE_ADDR (no forwarded header is believed); behind a proxy that is the
# proxy's, and the lock then falls on the username.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("LOGIN_COOLOFF_MINUTES", 15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_DISABLE_ACCESS_LOG = True  # no row per successful login; failures are kept
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "orders:order-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- E-mail: Django's own variables -----------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "sent-emails"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Shop <shop@localhost>")

# --- Security with DEBUG off ----------------------------------------------
if not DEBUG:
    # X-Forwarded-Proto says "this came over HTTPS" only when a proxy we run
    # sets it; with gunicorn reachable directly any client could send it.
    if env_bool("BEHIND_TLS_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Health checks and scrapers call these from inside the network over plain
    # HTTP, not through the TLS proxy: a redirect to https would fail them.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    # Commitments for every subdomain, and for browsers' preload lists (hard to
    # undo): the operator opts in.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    # check --deploy warns while those two are off: they are off by decision.
    SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

# --- Celery (every key here must be one Celery knows; a test checks) -------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
# Celery's own daily celery.backend_cleanup deletes results this old, and so does mediator.prune.
TASK_RESULTS_KEEP_DAYS = env_float("KEEP_TASK_RESULTS_DAYS", 1)
CELERY_RESULT_EXPIRES = timedelta(days=TASK_RESULTS_KEEP_DAYS)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_EVENT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
# Ack only after the task ran, requeue when its process dies, and take one
# message at a time, so a crash never loses a message another worker could run.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 1)
CELERY_WORKER_SEND_TASK_EVENTS = True
# A "task-sent" event per publish lets Flower show tasks still in the queue; it
# costs about a quarter of each publish (docs/benchmarks.md, relay drain).
CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_TASK_SEND_SENT_EVENT", True)
# Redis hands an unacked message to another worker after this many seconds; it
# must exceed the longest retry countdown and hard time limit (system check).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    # Fail fast on an unreachable broker so publishing after commit stays bounded.
    "socket_connect_timeout": 2,
}
CELERY_TASK_ROUTES = ["mediator.handlers.routing.route_handler_task"]
# RabbitMQ: the task queues are quorum queues (RabbitMQ 3.8+): replicated,
# written to disk before the broker confirms a publish, so neither a node
# crash nor a failover loses an accepted task. Celery then turns global QoS
# off, and schedules retry countdowns in the broker (native delayed delivery:
# celery_delayed_* queues), which needs topic exchanges. An existing classic
# queue of the same name refuses the redeclaration (PRECONDITION_FAILED):
# delete it, or set CELERY_QUORUM_QUEUES=false.
QUORUM_QUEUES = CELERY_BROKER_URL.startswith(("amqp", "pyamqp")) and env_bool(
    "CELERY_QUORUM_QUEUES", True
)
if QUORUM_QUEUES:
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"  # a handler's own queue
    CELERY_TASK_CREATE_MISSING_QUEUE_EXCHANGE_TYPE = "topic"
# Records messages Celery would drop unread (undecodable, invalid) as poisoned.
CELERY_WORKER_CONSUMER = "mediator.worker.consumer:Consumer"
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / "var" / "celerybeat-schedule")
# Write the schedule file after every task sent, not every 3 minutes: its
# modification time is what the compose health check of beat reads.
CELERY_BEAT_SYNC_EVERY = 1

# --- Mediator (defaults and meaning of each key: mediator/conf.py) ---------
MEDIATOR = {
    "MAX_RETRIES": env_int("MEDIATOR_MAX_RETRIES", 5),
    "RETRY_BACKOFF_MAX": env_float("MEDIATOR_RETRY_BACKOFF_MAX", 300.0),
    "RELAY_GRACE_SECONDS": env_float("MEDIATOR_RELAY_GRACE", 5.0),
    "RELAY_INTERVAL_SECONDS": env_float("MEDIATOR_RELAY_INTERVAL", 5.0),
    "REDELIVER_AFTER_SECONDS": env_float("MEDIATOR_REDELIVER_AFTER", 600.0),
    "NO_HANDLERS_AFTER_SECONDS": env_float("MEDIATOR_NO_HANDLERS_AFTER", 300.0),
    # Admin links from a poisoned task to the order its payload names, and to Flower.
    "ADMIN_LINKS": "ordering.admin_links.poisoned_task_links",
    "FLOWER_URL": env_str("PUBLIC_FLOWER_URL", "http://127.0.0.1:5555"),
    # /metrics asks for "Authorization: Bearer <METRICS_TOKEN>" when set.
    "METRICS_TOKEN": env_str("METRICS_TOKEN", ""),
    # Breakers keep their state in Redis: with another broker, in REDIS_URL's.
    "BREAKER_REDIS_URL": None if CELERY_BROKER_URL.startswith("redis") else REDIS_URL,
    # What `mediator.prune` (hourly, beat) deletes, and when (ages in days).
    "RETENTION": {
        "OUTBOX_DAYS": env_float("MEDIATOR_KEEP_OUTBOX_DAYS", 7),
        "INBOX_DAYS": env_float("MEDIATOR_KEEP_INBOX_DAYS", 7),
        "SAGA_DAYS": env_float("MEDIATOR_KEEP_SAGA_DAYS", 30),
        "MODELS": {
            # Sent e-mails are the idempotency record of each e-mail: keep them
            # longer than inbox records. Unsent ones always stay.
            "notifications.SentEmail": ["sent_at", env_float("KEEP_SENT_EMAIL_DAYS", 30)],
            "django_celery_results.TaskResult": ["date_done", TASK_RESULTS_KEEP_DAYS],
        },
    },
}
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "mediator-relay-outbox": {
        "task": "mediator.relay_outbox",
        "schedule": MEDIATOR["RELAY_INTERVAL_SECONDS"],
        "options": {"expires": MEDIATOR["RELAY_INTERVAL_SECONDS"]},
    },
    "mediator-prune": {
        "task": "mediator.prune",
        "schedule": env_float("MEDIATOR_PRUNE_INTERVAL", 3600.0),
        "options": {"expires": 600},
    },
}

# /readyz answers 503 when the oldest undispatched event is older than this.
READYZ_MAX_OUTBOX_LAG = env_float("READYZ_MAX_OUTBOX_LAG", 60.0)
# /readyz asks the broker at most once per this many seconds (per process),
# each time with this connect timeout; requests in between reuse the answer.
READYZ_BROKER_CHECK_SECONDS = env_float("READYZ_BROKER_CHECK_SECONDS", 5.0)
READYZ_BROKER_TIMEOUT = env_float("READYZ_BROKER_TIMEOUT", 1.0)

# Where operators open Flower (admin links). Not FLOWER_*: Flower reads those as its options.
PUBLIC_FLOWER_URL = env_str("PUBLIC_FLOWER_URL", "http://127.0.0.1:5555")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"delivery": {"()": "mediator.observability.logging.DeliveryContextFilter"}},
    "formatters": {
        # logfmt-style: every line of a handler run names its event, handler and attempt.
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(delivery)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["delivery"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- The demo shop's fake payment provider (ordering/payment_provider.py) ---
# It keeps its ledger in Redis, outside our database, as a real provider would.
# DECLINE_RATE: share of charges declined (besides the "declined" test card);
# ERROR_RATE: share of calls that time out before reaching it (retried).
PAYMENT_PROVIDER = {
    "REDIS_URL": env_str("PAYMENT_PROVIDER_REDIS_URL"),  # empty: REDIS_URL
    "DECLINE_RATE": env_float("PAYMENT_DECLINE_RATE", 0.0),
    "ERROR_RATE": env_float("PAYMENT_ERROR_RATE", 0.0),
    "LOST_ANSWER_RATE": 0.0,  # charges made whose answer never arrives (tests set it)
}
