"""The optional parts of the distribution, and the error that names the
extra a setting needs when it is not installed."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from types import ModuleType

from django.core.exceptions import ImproperlyConfigured

# extra -> the module that tells whether it is installed
EXTRAS = {"redis": "redis", "prometheus": "prometheus_client", "otel": "opentelemetry.sdk"}


def installed(extra: str) -> bool:
    try:
        return find_spec(EXTRAS[extra]) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def missing(extra: str, feature: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"{feature} needs the {extra!r} extra, which is not installed: "
        f"pip install 'django-durable-mediator[{extra}]'"
    )


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import `module` of an extra, or say which extra to install."""
    try:
        return import_module(module)
    except ImportError as exc:
        raise missing(extra, feature) from exc
