"""`manage.py check`: mistakes in the event/handler wiring, found at startup."""

from __future__ import annotations

from collections import Counter
from typing import Any

from celery import current_app
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured

from mediator.conf import mediator_settings
from mediator.exceptions import MediatorError
from mediator.handlers.pipeline import behaviours
from mediator.handlers.registry import handler_registry
from mediator.handlers.spec import HandlerSpec
from mediator.messages.base import Message, message_types
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


def retry_schedule_seconds(spec: HandlerSpec) -> float:
    """The longest a delivery can take before it is done or poisoned: every
    countdown at its cap, every attempt at its hard time limit."""
    countdowns = sum(min(spec.backoff_max, spec.backoff * 2**n) for n in range(spec.max_retries))
    return countdowns + (spec.max_retries + 1) * (spec.time_limit or 0)


def _check_redelivery_bound() -> list[CheckMessage]:
    bound = float(mediator_settings()["REDELIVER_AFTER_SECONDS"])
    slow = [spec for spec in handler_registry.all() if retry_schedule_seconds(spec) >= bound]
    return [
        Warning(
            f"{spec.name} may take {retry_schedule_seconds(spec):.0f}s to finish its retries, "
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
    options = conf.broker_transport_options or {}
    timeout = float(options.get("visibility_timeout", 3600))
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
