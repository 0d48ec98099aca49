"""Test settings: the real settings, run with DEBUG off, plus test-only speed-ups.

Worker subprocesses started by the fixtures use this module too, so the test
process and the workers agree on everything but the database URL they are given.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("EMAIL_BACKEND", "tests.testapp.mail.SwitchableBackend")
# Workers started by the tests count Prometheus metrics where the test
# process's /metrics reads them (multiprocess mode; removed by tests/conftest.py).
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    str(Path(tempfile.gettempdir()) / f"mediator-test-metrics-{os.getpid()}"),
)
os.environ.setdefault("EMAIL_FILE_PATH", str(Path(tempfile.gettempdir()) / "mediator-test-emails"))

from config.settings import *  # noqa: F403
from config.settings import DATABASES, MEDIATOR

os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so worker processes can open the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get(
            "TEST_SQLITE_PATH",
            str(Path(tempfile.gettempdir()) / f"mediator-test-{os.getpid()}.sqlite3"),
        )
    }

# Serve static files from the apps directly: tests never run collectstatic.
STATIC_ROOT = None  # type: ignore[assignment]
WHITENOISE_USE_FINDERS = True

# Test events and handlers whose misbehaviour tests choose (tests/testapp).
INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks", "tests.testapp"]  # noqa: F405

# django-tasks on the mediator (docs/tasks-backend.md); tests/testapp/tasks.py.
TASKS = {
    "default": {
        "BACKEND": "mediator.tasks_backend.MediatorBackend",
        "QUEUES": ["default", "reports"],
    }
}

# The chain with two recording behaviours around the shipped ones
# (tests/testapp/behaviours.py), and a quick breaker for the breaker tests.
MEDIATOR = {
    **MEDIATOR,
    "BEHAVIOURS": [
        "tests.testapp.behaviours.outer",
        "mediator.observability.behaviours.log",
        "mediator.observability.behaviours.trace",
        "mediator.observability.metrics.measure",
        "mediator.resilience.behaviours.circuit_breaker",
        "mediator.handlers.behaviours.validate",
        "tests.testapp.behaviours.inner",
        "tests.testapp.behaviours.faults",
    ],
    "BREAKERS": {
        "default": {"FAILURE_THRESHOLD": 5, "RESET_TIMEOUT": 30.0},
        "tests.downstream": {"FAILURE_THRESHOLD": 3, "RESET_TIMEOUT": 8.0, "PROBE_TIMEOUT": 10.0},
    },
}
