"""What becomes of a delivery once its run has ended: a pure decision.

`decide` looks only at what it is given (the handler's policy, how the run
ended, the retries spent), so its table of cases is tested without a worker
(tests/mediator/test_outcome.py); mediator.worker.run carries it out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from mediator.exceptions import CircuitOpen, Deferred
from mediator.handlers.spec import HandlerSpec


class Verdict(Enum):
    DONE = "done"
    DUPLICATE = "duplicate"  # the inbox had it: skipped
    RETRY = "retry"  # after `countdown`, spending one retry
    DEFER = "defer"  # after `countdown`, spending none (the cause clears by itself)
    POISON = "poison"  # for an operator: nothing more is tried


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    countdown: float = 0.0
    reason: str = ""  # why deferred ("breaker", "deferred"), or why poisoned


DONE = Outcome(Verdict.DONE)
DUPLICATE = Outcome(Verdict.DUPLICATE)


def decide(
    spec: HandlerSpec,
    *,
    error: BaseException | None,
    duplicate: bool = False,
    retries: int = 0,
    decoded: bool = True,
    uniform: Callable[[float, float], float] = random.uniform,
) -> Outcome:
    """The outcome of one run of `spec`'s handler.

    `error` is what the run raised (None: it returned), `retries` how many
    retries were spent before it, `decoded` whether the message could be read
    at all (one that cannot is poisoned whatever the policy says), `uniform`
    the jitter's source of randomness.
    """
    if error is None:
        return DUPLICATE if duplicate else DONE
    described = f"{type(error).__name__}: {error}"
    if not decoded:
        return Outcome(Verdict.POISON, reason=described)
    if isinstance(error, Deferred):
        reason = "breaker" if isinstance(error, CircuitOpen) else "deferred"
        return Outcome(Verdict.DEFER, countdown=error.countdown, reason=reason)
    if spec.should_retry(error) and retries < spec.max_retries:
        return Outcome(Verdict.RETRY, countdown=spec.countdown(retries, uniform), reason=described)
    return Outcome(Verdict.POISON, reason=described)
