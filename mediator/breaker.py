"""Circuit breakers shared by every worker, with their state in Redis.

Closed: runs go through; a run of FAILURE_THRESHOLD failures in a row (only
failures worth retrying count: a downstream that is down, not a bug) opens it.
Open: runs are deferred, not tried, until RESET_TIMEOUT has passed. Half-open:
exactly one run, across all processes, goes through as a probe; its success
closes the breaker, its failure opens it for another RESET_TIMEOUT. A probe
that never reports (its worker died) frees the slot after PROBE_TIMEOUT.

Each transition is one Lua script, so two workers cannot both take the probe,
and time is Redis's clock, so workers with skewed clocks agree. (pybreaker's
Redis storage was the first choice; in its half-open state every caller goes
through, from every process at once, and it times the cool-down on each
process's own clock.) If Redis cannot be reached the breaker lets runs
through: the breaker must never be the reason work stops.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings

from mediator.conf import mediator_settings
from mediator.exceptions import CircuitOpen

logger = logging.getLogger("mediator.breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
KEY_PREFIX = "mediator:breaker:"

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# -> {decision, seconds to wait, failures so far}; decision: closed | probe | open
_BEFORE_CALL = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'probe_until', 'failures')
local state = h[1] or 'closed'
local failures = h[4] or '0'
if state == 'closed' then return {'closed', '0', failures} end
if state == 'open' then
  local wait = tonumber(h[2] or '0') + tonumber(ARGV[1]) - now
  if wait > 0 then return {'open', tostring(wait), failures} end
  local probe_until = tostring(now + tonumber(ARGV[2]))
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', probe_until)
  return {'probe', '0', failures}
end
local wait = tonumber(h[3] or '0') - now
if wait > 0 then return {'open', tostring(wait), failures} end
redis.call('HSET', KEYS[1], 'probe_until', tostring(now + tonumber(ARGV[2])))
return {'probe', '0', failures}
"""
)

# ARGV: threshold -> {state before, state after}
_FAILURE = (
    _NOW
    + """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state ~= 'closed' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now), 'probe_until', '0')
  return {state, 'open'}
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now), 'probe_until', '0')
  return {state, 'open'}
end
return {state, state}
"""
)

_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0', 'probe_until', '0')
return {state, 'closed'}
"""

# A probe that ended in neither success nor a counted failure frees the slot.
_RELEASE_PROBE = """
if redis.call('HGET', KEYS[1], 'state') == 'half_open' then
  redis.call('HSET', KEYS[1], 'probe_until', '0')
end
return 1
"""


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int
    reset_timeout: float
    probe_timeout: float


@dataclass(frozen=True)
class Ticket:
    """Permission for one run: whether it is the half-open probe, and how many
    failures in a row the breaker had counted when it was given."""

    probe: bool
    failures_seen: int


@dataclass(frozen=True)
class BreakerState:
    name: str
    state: str
    failures: int
    opened_at: float | None
    retry_in: float  # seconds until the next probe may go through (0 if closed)
    settings: BreakerSettings


def breaker_settings(name: str) -> BreakerSettings:
    configured = mediator_settings()["BREAKERS"]
    merged = {**configured.get("default", {}), **configured.get(name, {})}
    return BreakerSettings(
        failure_threshold=int(merged.get("FAILURE_THRESHOLD", 5)),
        reset_timeout=float(merged.get("RESET_TIMEOUT", 30.0)),
        probe_timeout=float(merged.get("PROBE_TIMEOUT", 60.0)),
    )


@cache
def _client() -> redis.Redis:
    url = mediator_settings()["BREAKER_REDIS_URL"] or getattr(settings, "REDIS_URL", None)
    return redis.Redis.from_url(
        url or settings.CELERY_BROKER_URL,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        decode_responses=True,
    )


_registered: dict[str, Any] = {}


def _script(source: str) -> Any:
    if source not in _registered:
        _registered[source] = _client().register_script(source)
    return _registered[source]


class Breaker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.key = KEY_PREFIX + name
        self.settings = breaker_settings(name)

    def before_call(self) -> Ticket:
        """A ticket to run now, or CircuitOpen saying how long to wait."""
        try:
            decision, wait, failures = _script(_BEFORE_CALL)(
                keys=[self.key], args=[self.settings.reset_timeout, self.settings.probe_timeout]
            )
        except redis.RedisError as exc:
            logger.warning("breaker %s unavailable (%s): letting the run through", self.name, exc)
            return Ticket(probe=False, failures_seen=0)
        if decision == OPEN:
            raise CircuitOpen(self.name, countdown=self._countdown(float(wait)))
        if decision == "probe":
            logger.warning("breaker %s half-open: this run is the probe", self.name)
        return Ticket(probe=decision == "probe", failures_seen=int(failures))

    def _countdown(self, wait: float) -> float:
        """Deferred tasks come back spread over a tenth of the wait, so they do
        not arrive together; while a probe is out, they look again soon."""
        wait = min(wait, max(1.0, self.settings.reset_timeout / 10)) if wait > 0 else 0.5
        return wait + random.uniform(0, max(0.2, wait / 10))

    def record_success(self, ticket: Ticket) -> None:
        if ticket.probe or ticket.failures_seen:
            self._transition(_SUCCESS, [])

    def record_failure(self, ticket: Ticket) -> None:
        self._transition(_FAILURE, [self.settings.failure_threshold])

    def release(self, ticket: Ticket) -> None:
        if ticket.probe:
            self._run(_RELEASE_PROBE, [])

    def close(self) -> None:
        """Close by hand (the admin's button): the next runs go through."""
        self._transition(_SUCCESS, [])

    def state(self) -> BreakerState:
        h: dict[str, str] = _client().hgetall(self.key)  # type: ignore[assignment]
        now = _redis_now()
        state = h.get("state", CLOSED)
        opened_at = float(h["opened_at"]) if "opened_at" in h else None
        if state == OPEN and opened_at is not None:
            retry_in = max(0.0, opened_at + self.settings.reset_timeout - now)
        elif state == HALF_OPEN:
            retry_in = max(0.0, float(h.get("probe_until", 0)) - now)
        else:
            retry_in = 0.0
        return BreakerState(
            name=self.name,
            state=state,
            failures=int(h.get("failures", 0)),
            opened_at=opened_at if state != CLOSED else None,
            retry_in=retry_in,
            settings=self.settings,
        )

    def _transition(self, source: str, args: list[Any]) -> None:
        result = self._run(source, args)
        if result and result[0] != result[1]:
            level = logging.WARNING if result[1] == OPEN else logging.INFO
            logger.log(level, "breaker %s: %s -> %s", self.name, result[0], result[1])
            from mediator import metrics

            metrics.breaker_transition(self.name, result[1])

    def _run(self, source: str, args: list[Any]) -> Any:
        try:
            return _script(source)(keys=[self.key], args=args)
        except redis.RedisError as exc:
            logger.warning("breaker %s could not record the outcome: %s", self.name, exc)
            return None


def _redis_now() -> float:
    seconds, micros = _client().time()
    return float(seconds) + micros / 1_000_000


def breaker_names() -> list[str]:
    from mediator.registry import all_handlers

    return sorted({spec.breaker for spec in all_handlers() if spec.breaker})


def all_states() -> list[BreakerState]:
    """Every declared breaker's state (raises redis.RedisError if Redis is down)."""
    return [Breaker(name).state() for name in breaker_names()]
