"""How long the mediator keeps what it has finished with (MEDIATOR["RETENTION"]),
and the shortest inbox retention that is still safe."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import current_app
from django.core.exceptions import ImproperlyConfigured

from mediator.conf import mediator_settings
from mediator.handlers.registry import handler_registry

# Ages in days; None keeps the rows for good.
DEFAULTS: dict[str, Any] = {
    "OUTBOX_DAYS": 7,  # outbox rows every delivery of which is done or poisoned, or with no handler
    "INBOX_DAYS": 7,  # inbox records (never sooner than a redelivery is possible: system check)
    "PROGRESS_DAYS": 7,  # "running"/"retrying" rows left behind
    "SAGA_DAYS": 30,  # completed or compensated saga runs, with their steps (stuck ones stay)
    "POISONED_DAYS": None,  # resolved or discarded poisoned rows (open ones always stay)
    # Other tables of the project: {"app_label.Model": ["datetime_field", days]}; a
    # row whose field is empty (an e-mail not yet sent) stays.
    "MODELS": {},
    "BATCH_SIZE": 1000,  # rows per DELETE: short statements, short locks
}


@dataclass(frozen=True)
class RetentionPolicy:
    outbox: timedelta | None
    inbox: timedelta | None
    progress: timedelta | None
    sagas: timedelta | None
    poisoned: timedelta | None
    models: dict[str, tuple[str, timedelta]] = field(default_factory=dict)
    batch_size: int = 1000

    @classmethod
    def from_settings(cls) -> RetentionPolicy:
        given = mediator_settings()["RETENTION"]
        unknown = set(given) - set(DEFAULTS)
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown MEDIATOR['RETENTION'] key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}"
            )
        merged = {**DEFAULTS, **given}
        models: dict[str, tuple[str, timedelta]] = {}
        for label, spec in merged["MODELS"].items():
            try:
                column, days = spec
                models[label] = (str(column), timedelta(days=float(days)))
            except (TypeError, ValueError):
                raise ImproperlyConfigured(
                    f"MEDIATOR['RETENTION']['MODELS'][{label!r}] must be "
                    f'["datetime_field", days], not {spec!r}.'
                ) from None
        return cls(
            outbox=_days(merged["OUTBOX_DAYS"]),
            inbox=_days(merged["INBOX_DAYS"]),
            progress=_days(merged["PROGRESS_DAYS"]),
            sagas=_days(merged["SAGA_DAYS"]),
            poisoned=_days(merged["POISONED_DAYS"]),
            models=models,
            batch_size=int(merged["BATCH_SIZE"]),
        )


def _days(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(days=float(value))


def visibility_timeout_seconds() -> float:
    """After how long the broker (Redis) hands an unacknowledged message out again."""
    options = current_app.conf.broker_transport_options or {}
    return float(options.get("visibility_timeout", 3600))


def redelivery_window() -> timedelta:
    """How long after a delivery is done a copy of its message can still
    arrive: the broker hands an unacknowledged message out again after the
    visibility timeout, the reconciler re-sends after its bound, and a copy
    may go through a whole retry schedule. An inbox record kept less long
    would let that copy apply its effect a second time."""
    visibility = visibility_timeout_seconds()
    redeliver_after = float(mediator_settings()["REDELIVER_AFTER_SECONDS"])
    longest = max((spec.retry_schedule_seconds() for spec in handler_registry.all()), default=0.0)
    return timedelta(seconds=visibility + redeliver_after + longest)
