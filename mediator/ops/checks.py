"""`manage.py check`: mistakes in the event/handler wiring, found at startup."""

from __future__ import annotations

from collections import Counter
from typing import Any

from celery import current_app
from django.apps import apps
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from mediator.conf import mediator_settings
from mediator.exceptions import MediatorError
from mediator.extras import installed, missing
from mediator.handlers.pipeline import behaviours
from mediator.handlers.registry import handler_registry
from mediator.messages.base import Message, message_types
from mediator.retention.policy import (
    RetentionPolicy,
    redelivery_window,
    visibility_timeout_seconds,
)
from mediator.sagas.definition import command_type, saga_registry


def check_wiring(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        mediator_settings()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="mediator.E004")]

    classes = message_types.all()
    counts = Counter(cls.event_type for cls in classes)
    for event_type, count in sorted(counts.items()):
        if count > 1:
            owners = ", ".join(
                f"{cls.__module__}.{cls.__qualname__}"
                for cls in classes
                if cls.event_type == event_type
            )
            messages.append(
                Error(
                    f"{count} event classes share the type name {event_type!r}: {owners}.",
                    hint="Give each event class its own `event_type`.",
                    id="mediator.E001",
                )
            )
    for name in sorted(set(handler_registry.duplicate_names())):
        messages.append(
            Error(
                f"Two handlers are registered under the task name {name!r}.",
                hint="Rename one function, or pass name=... to @handles.",
                id="mediator.E002",
            )
        )
    kinds = {cls.event_type: cls.kind for cls in classes}
    for event_type in sorted(counts):
        if kinds[event_type] == "command":
            continue  # _check_commands
        if not handler_registry.for_type(event_type):
            messages.append(
                Warning(
                    f"No handler subscribes to {event_type!r}; its events wait "
                    "MEDIATOR['NO_HANDLERS_AFTER_SECONDS'] for a process that has one, "
                    "then are recorded as having no handlers.",
                    id="mediator.W001",
                )
            )
    messages += _check_commands(classes)
    messages += _check_sagas()
    messages += _check_behaviours()
    messages += _check_visibility_timeout()
    messages += _check_redelivery_bound()
    messages += _check_retention()
    messages += _check_extras()
    return messages


def _check_commands(classes: list[type[Message]]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for cls in classes:
        if cls.kind != "command":
            continue
        specs = handler_registry.for_type(cls.event_type)
        if len(specs) != 1:
            names = ", ".join(spec.name for spec in specs) or "none"
            messages.append(
                Error(
                    f"Command {cls.__module__}.{cls.__qualname__} has {len(specs)} handlers "
                    f"({names}); a command needs exactly one.",
                    hint="Decorate exactly one function with @handles(" + cls.__name__ + ").",
                    id="mediator.E005",
                )
            )
    return messages


def _check_sagas() -> list[CheckMessage]:
    """Every command a saga step names (by class or by type name) exists and
    is a command: found at startup, not when a run reaches that step."""
    messages: list[CheckMessage] = []
    for saga in saga_registry.all():
        for step in saga.steps:
            for target in (step.action, step.compensate):
                if target is None:
                    continue
                try:
                    command_type(target)
                except MediatorError as exc:
                    messages.append(
                        Error(
                            f"Saga {saga.name}, step {step.step_name}: {exc}",
                            hint="Name a Command class, or the event_type of one.",
                            id="mediator.E008",
                        )
                    )
    return messages


def _check_behaviours() -> list[CheckMessage]:
    try:
        behaviours()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="mediator.E006")]
    return []


def _check_redelivery_bound() -> list[CheckMessage]:
    bound = float(mediator_settings()["REDELIVER_AFTER_SECONDS"])
    slow = [spec for spec in handler_registry.all() if spec.retry_schedule_seconds() >= bound]
    return [
        Warning(
            f"{spec.name} may take {spec.retry_schedule_seconds():.0f}s to finish its retries, "
            f"longer than MEDIATOR_REDELIVER_AFTER ({bound:.0f}s): the reconciler would "
            "re-send its deliveries while they are still retrying.",
            hint="Raise MEDIATOR_REDELIVER_AFTER, or lower the handler's retries or backoff.",
            id="mediator.W002",
        )
        for spec in slow
    ]


def _check_visibility_timeout() -> list[CheckMessage]:
    conf = current_app.conf
    broker = str(conf.broker_url or "")
    if not broker.startswith(("redis://", "rediss://", "redis+socket://")):
        return []
    timeout = visibility_timeout_seconds()
    longest = max(
        (spec.backoff_max + (spec.time_limit or 0) for spec in handler_registry.all()),
        default=float(mediator_settings()["RETRY_BACKOFF_MAX"]),
    )
    if timeout <= longest:
        return [
            Error(
                f"Redis visibility_timeout ({timeout:.0f}s) is not longer than the longest "
                f"retry countdown plus hard time limit ({longest:.0f}s): a retried task "
                "would be handed to a second worker and run twice.",
                hint="Raise CELERY_VISIBILITY_TIMEOUT or lower MEDIATOR_RETRY_BACKOFF_MAX.",
                id="mediator.E003",
            )
        ]
    return []


def _check_retention() -> list[CheckMessage]:
    try:
        policy = RetentionPolicy.from_settings()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="mediator.E010")]
    messages: list[CheckMessage] = []
    for label, (column, _) in policy.models.items():
        try:
            apps.get_model(label)._meta.get_field(column)
        except (LookupError, ValueError, FieldDoesNotExist) as exc:
            messages.append(
                Error(
                    f"MEDIATOR['RETENTION']['MODELS'] names {label}.{column}: {exc}",
                    hint='Give "app_label.Model": ["datetime_field", days].',
                    id="mediator.E010",
                )
            )
    window = redelivery_window()
    if policy.inbox is not None and policy.inbox < window:
        messages.append(
            Error(
                f"MEDIATOR['RETENTION']['INBOX_DAYS'] keeps inbox records "
                f"{policy.inbox.total_seconds():.0f}s, less than a redelivered copy of a message "
                f"can still arrive ({window.total_seconds():.0f}s: visibility timeout + "
                "MEDIATOR_REDELIVER_AFTER + the longest retry schedule): that copy would apply "
                "its effect a second time.",
                hint=f"Keep inbox records at least {window.total_seconds() / 86400:.3f} days.",
                id="mediator.E009",
            )
        )
    return messages


def _check_extras() -> list[CheckMessage]:
    if installed("redis"):
        return []
    return [
        Error(
            str(missing("redis", f"{spec.name}'s circuit breaker {spec.breaker!r}")),
            hint="Breakers share their state through Redis.",
            id="mediator.E011",
        )
        for spec in handler_registry.all()
        if spec.breaker
    ]


def check_migrations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The installed mediator's migrations, applied? (An upgrade that adds one
    and a forgotten `migrate` would otherwise fail on the first publish.)"""
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        return []  # no database to ask yet
    unapplied = [migration.name for migration, _ in plan if migration.app_label == "mediator"]
    if not unapplied:
        return []
    return [
        Warning(
            f"{len(unapplied)} migration(s) of the mediator are not applied "
            f"({', '.join(unapplied)}): publishing and delivery will fail.",
            hint="Run manage.py migrate.",
            id="mediator.W003",
        )
    ]
