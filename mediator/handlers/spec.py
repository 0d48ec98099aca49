"""What the mediator knows of one handler: its function, what it handles, and
its delivery policy (retries, limits, queue, breaker)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mediator.messages.base import Message

if TYPE_CHECKING:
    from celery import Task


@dataclass
class HandlerSpec:
    name: str
    func: Callable[[Any], Any]
    event_types: tuple[type[Message], ...]
    max_retries: int
    backoff: float
    backoff_max: float
    jitter: bool
    retry_on: tuple[type[BaseException], ...]
    poison_on: tuple[type[BaseException], ...]
    queue: str | None = None
    rate_limit: str | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None
    atomic: bool = True
    breaker: str | None = None  # the circuit breaker this handler's runs go through
    # The Celery task, set by the worker layer when it builds one (app ready).
    task: Task | None = None

    @property
    def is_command_handler(self) -> bool:
        return self.event_types[0].kind == "command"

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, self.poison_on):
            return False
        return isinstance(exc, self.retry_on)

    def retry_schedule_seconds(self) -> float:
        """The longest a delivery can take before it is done or poisoned: every
        countdown at its cap, every attempt at its hard time limit."""
        countdowns = sum(
            min(self.backoff_max, self.backoff * 2**n) for n in range(self.max_retries)
        )
        return countdowns + (self.max_retries + 1) * (self.time_limit or 0)

    def countdown(
        self, retries_so_far: int, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """Seconds before the next try: exponential, capped, with equal jitter."""
        delay = min(self.backoff_max, self.backoff * (2**retries_so_far))
        return uniform(delay / 2, delay) if self.jitter else delay
