"""Fault injection around the real handlers, for the soak test only.

Each handler runs for real, records its effect, and then, at random, raises a
transient error (so the effect must roll back and the retry apply it once), or,
for a few events, a permanent one (so the delivery must end poisoned).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from typing import Any

from mediator import PermanentError, current_event_id
from mediator.handlers.registry import all_handlers


def transient_rate() -> float:
    return float(os.environ.get("CHAOS_TRANSIENT_RATE", "0.3"))


def is_permanent_failure(event_id: uuid.UUID, handler: str) -> bool:
    """About one delivery in 200, the same ones on every attempt."""
    return uuid.uuid5(event_id, handler).int % 200 == 0


def faulty(name: str, func: Callable[[Any], Any], *, atomic: bool) -> Callable[[Any], Any]:
    from chaos.models import AppliedEffect

    def run(event: Any) -> Any:
        event_id = current_event_id()
        result = func(event)
        if atomic:
            # A database effect in the handler's transaction: must apply once.
            # (A non-atomic handler's effect is outside the database; the mail
            # ledger counts those.)
            AppliedEffect.objects.create(event_id=event_id, handler=name)
        if is_permanent_failure(event_id, name):
            raise PermanentError(f"chaos: {name} can never handle {event_id}")
        if random.random() < transient_rate():
            raise ConnectionError(f"chaos: {name} lost its downstream service")
        return result

    return run


def inject_faults() -> None:
    for spec in all_handlers():
        if not getattr(spec.func, "chaos", False):
            spec.func = faulty(spec.name, spec.func, atomic=spec.atomic)
            spec.func.chaos = True  # type: ignore[attr-defined]
