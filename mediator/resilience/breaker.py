"""Circuit breakers shared by every worker, with their state in Redis.

Closed: runs go through; a run of FAILURE_THRESHOLD failures in a row (only
failures worth retrying count: a downstream that is down, not a bug) opens it.
Open: runs are deferred, not tried, until RESET_TIMEOUT has passed. Half-open:
exactly one run, across all processes, goes through as a probe; its success
closes the breaker, its failure opens it for another RESET_TIMEOUT. A probe
that never reports (its worker died) frees the slot after PROBE_TIMEOUT.
Outcomes of runs that started before the breaker opened change nothing.

Each transition is one Lua script, so two workers cannot both take the probe,
and time is Redis's clock, so workers with skewed clocks agree. (pybreaker's
Redis storage was the first choice; in its half-open state every caller goes
through, from every process at once, and it times the cool-down on each
process's own clock.) If Redis cannot be reached the breaker lets runs
through, and stops asking for a few seconds: the breaker must never be the
reason work stops.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from celery import current_app
from django.core.exceptions import ImproperlyConfigured

from mediator.conf import mediator_settings
from mediator.exceptions import CircuitOpen
from mediator.extras import require
from mediator.handlers.registry import handler_registry
from mediator.signals import breaker_transitioned

logger = logging.getLogger("mediator.breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
KEY_PREFIX = "mediator:breaker:"

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# ARGV: reset timeout, probe timeout, a token for the probe
# -> {decision, seconds to wait, failures so far}; decision: closed | probe | open | half_open
_BEFORE_CALL = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'probe_until', 'failures')
local state = h[1] or 'closed'
local failures = h[4] or '0'
if state == 'closed' then return {'closed', '0', failures} end
local wait
if state == 'open' then
  wait = tonumber(h[2] or '0') + tonumber(ARGV[1]) - now
else
  wait = tonumber(h[3] or '0') - now
end
if wait > 0 then return {state, tostring(wait), failures} end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe', ARGV[3],
           'probe_until', tostring(now + tonumber(ARGV[2])))
return {'probe', '0', failures}
"""
)

# Outcomes say {state before, state after}. Only the probe holding the slot
# (ARGV token) moves a half-open breaker; an outcome of a call that started
# before the breaker opened changes nothing once it is open.

# ARGV: threshold, token
_FAILURE = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'probe')
local state = h[1] or 'closed'
local opens = false
if state == 'closed' then
  opens = redis.call('HINCRBY', KEYS[1], 'failures', 1) >= tonumber(ARGV[1])
elseif state == 'half_open' then
  opens = ARGV[2] ~= '' and h[2] == ARGV[2]
end
if not opens then return {state, state} end
redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now), 'probe_until', '0',
           'probe', '')
return {state, 'open'}
"""
)

# ARGV: token
_SUCCESS = """
local h = redis.call('HMGET', KEYS[1], 'state', 'probe', 'failures')
local state = h[1] or 'closed'
if state == 'closed' then
  if h[3] and h[3] ~= '0' then redis.call('HSET', KEYS[1], 'failures', '0') end
  return {state, state}
end
if state == 'half_open' and ARGV[1] ~= '' and h[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0', 'probe_until', '0', 'probe', '')
  return {state, 'closed'}
end
return {state, state}
"""

_CLOSE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0', 'probe_until', '0', 'probe', '')
return {state, 'closed'}
"""

# ARGV: token. A probe that ended in neither success nor a counted failure
# (a bug, a refusal, a duplicate) frees the slot for the next one.
_RELEASE_PROBE = """
local h = redis.call('HMGET', KEYS[1], 'state', 'probe')
if h[1] == 'half_open' and ARGV[1] ~= '' and h[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'probe_until', '0', 'probe', '')
end
return 1
"""

# After Redis failed, runs go through without asking it for this long.
UNAVAILABLE_PAUSE_SECONDS = 5.0


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int
    reset_timeout: float
    probe_timeout: float


@dataclass(frozen=True)
class Ticket:
    """Permission for one run; `probe` is the half-open slot's token, or ""."""

    probe: str = ""


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


def redis_url() -> str:
    """MEDIATOR["BREAKER_REDIS_URL"], else the Celery broker's, if it is Redis."""
    configured = mediator_settings()["BREAKER_REDIS_URL"]
    if configured:
        return str(configured)
    broker = str(current_app.conf.broker_url or "")
    if broker.startswith(("redis://", "rediss://", "unix://")):
        return broker
    raise ImproperlyConfigured(
        "Circuit breakers keep their state in Redis, and the Celery broker is not Redis: "
        "set MEDIATOR['BREAKER_REDIS_URL']."
    )


try:
    from redis import RedisError
except ImportError:  # without the 'redis' extra, a declared breaker is mediator.E011

    class RedisError(Exception):  # type: ignore[no-redef]
        """Stands in for redis.RedisError, which nothing can raise then."""


@cache
def _client() -> Any:
    redis = require("redis", "redis", "Circuit breakers (@handles(..., breaker=...))")
    return redis.Redis.from_url(
        redis_url(),
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
    unavailable_until = 0.0  # monotonic time; shared by every breaker in the process

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = KEY_PREFIX + name
        self.settings = breaker_settings(name)

    def before_call(self) -> Ticket:
        """A ticket to run now, or CircuitOpen saying how long to wait."""
        token = uuid.uuid4().hex
        result = self._run(
            _BEFORE_CALL,
            [self.settings.reset_timeout, self.settings.probe_timeout, token],
        )
        if result is None:
            return Ticket()  # Redis unavailable: let the run through
        decision, wait, _failures = result
        if decision in (OPEN, HALF_OPEN):
            raise CircuitOpen(self.name, countdown=self._countdown(decision, float(wait)))
        if decision == "probe":
            logger.warning("breaker %s half-open: this run is the probe", self.name)
            return Ticket(probe=token)
        return Ticket()

    def _countdown(self, decision: str, wait: float) -> float:
        """Open: come back when the cool-down ends, spread over a tenth of it
        so the deferred tasks do not all arrive at once. Half-open (a probe is
        out): look again soon, as the probe usually ends in a moment."""
        if decision == OPEN:
            return wait + random.uniform(0, self.settings.reset_timeout / 10)
        return min(wait, max(1.0, self.settings.reset_timeout / 10)) + random.uniform(0, 0.2)

    def record_success(self, ticket: Ticket) -> None:
        self._transition(_SUCCESS, [ticket.probe])

    def record_failure(self, ticket: Ticket) -> None:
        self._transition(_FAILURE, [self.settings.failure_threshold, ticket.probe])

    def release(self, ticket: Ticket) -> None:
        if ticket.probe:
            self._run(_RELEASE_PROBE, [ticket.probe])

    def close(self) -> bool:
        """Close by hand (the admin's button): the next runs go through.
        False if Redis could not be reached."""
        return self._transition(_CLOSE, [], force=True)

    def state(self) -> BreakerState:
        h: dict[str, str] = _client().hgetall(self.key)
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

    def _transition(self, source: str, args: list[Any], *, force: bool = False) -> bool:
        result = self._run(source, args, force=force)
        if result is None:
            return False
        if result[0] != result[1]:
            level = logging.WARNING if result[1] == OPEN else logging.INFO
            logger.log(level, "breaker %s: %s -> %s", self.name, result[0], result[1])
            breaker_transitioned.send(
                sender=Breaker, breaker=self.name, before=result[0], after=result[1]
            )
        return True

    def _run(self, source: str, args: list[Any], *, force: bool = False) -> Any:
        """Run a script; None if Redis is unavailable (then, for a few seconds,
        do not even try: each try could cost a connect timeout)."""
        if not force and time.monotonic() < Breaker.unavailable_until:
            return None
        try:
            return _script(source)(keys=[self.key], args=args)
        # ValueError: not a Redis URL; ImproperlyConfigured: no Redis URL at all.
        except (RedisError, ValueError, ImproperlyConfigured) as exc:
            Breaker.unavailable_until = time.monotonic() + UNAVAILABLE_PAUSE_SECONDS
            logger.warning(
                "breaker %s: Redis unavailable (%s); runs go through unchecked for %.0f s",
                self.name, exc, UNAVAILABLE_PAUSE_SECONDS,
            )  # fmt: skip
            return None


def reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """setting_changed receiver (connected in ready())."""
    if setting in ("MEDIATOR", "CELERY_BROKER_URL"):
        _client.cache_clear()
        _registered.clear()
        Breaker.unavailable_until = 0.0


def _redis_now() -> float:
    seconds, micros = _client().time()
    return float(seconds) + micros / 1_000_000


def breaker_names() -> list[str]:
    return sorted({spec.breaker for spec in handler_registry.all() if spec.breaker})


def all_states() -> list[BreakerState]:
    """Every declared breaker's state (raises redis.RedisError if Redis is down)."""
    return [Breaker(name).state() for name in breaker_names()]
