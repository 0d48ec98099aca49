"""The outcome of a run as a table of cases: a pure decision, no worker."""

from __future__ import annotations

import pytest

from mediator.exceptions import (
    CircuitOpen,
    Deferred,
    InvalidPayload,
    MalformedMessage,
    PermanentError,
    RetryableError,
)
from mediator.handlers.spec import HandlerSpec
from mediator.worker.outcome import Outcome, Verdict, decide


def spec(**options: object) -> HandlerSpec:
    values: dict = {
        "name": "tests.handler",
        "func": lambda message: None,
        "event_types": (),
        "max_retries": 3,
        "backoff": 2.0,
        "backoff_max": 10.0,
        "jitter": False,
        "retry_on": (OSError, RetryableError),
        "poison_on": (),
    }
    return HandlerSpec(**{**values, **options})


def lowest(a: float, b: float) -> float:
    return a


@pytest.mark.parametrize(
    ("handler", "error", "duplicate", "retries", "decoded", "expected"),
    [
        # returned
        (spec(), None, False, 0, True, Outcome(Verdict.DONE)),
        (spec(), None, True, 0, True, Outcome(Verdict.DUPLICATE)),
        # retryable, within the budget: exponential countdown, capped
        (spec(), OSError("down"), False, 0, True, Outcome(Verdict.RETRY, 2.0, "OSError: down")),
        (spec(), OSError("down"), False, 2, True, Outcome(Verdict.RETRY, 8.0, "OSError: down")),
        (
            spec(max_retries=9),
            RetryableError("x"),
            False,
            5,
            True,
            Outcome(Verdict.RETRY, 10.0, "RetryableError: x"),
        ),
        # jitter draws from [c/2, c]
        (
            spec(jitter=True),
            OSError("j"),
            False,
            1,
            True,
            Outcome(Verdict.RETRY, 2.0, "OSError: j"),
        ),
        # retries spent
        (spec(), OSError("down"), False, 3, True, Outcome(Verdict.POISON, 0, "OSError: down")),
        # not worth retrying
        (spec(), ValueError("bug"), False, 0, True, Outcome(Verdict.POISON, 0, "ValueError: bug")),
        (
            spec(),
            PermanentError("no"),
            False,
            0,
            True,
            Outcome(Verdict.POISON, 0, "PermanentError: no"),
        ),
        # poison_on wins over retry_on
        (
            spec(poison_on=(ConnectionRefusedError,)),
            ConnectionRefusedError("r"),
            False,
            0,
            True,
            Outcome(Verdict.POISON, 0, "ConnectionRefusedError: r"),
        ),
        # deferred: no retry spent, even with the budget gone
        (
            spec(),
            Deferred("busy", countdown=4.5),
            False,
            3,
            True,
            Outcome(Verdict.DEFER, 4.5, "deferred"),
        ),
        (
            spec(),
            CircuitOpen("smtp", countdown=30.0),
            False,
            0,
            True,
            Outcome(Verdict.DEFER, 30.0, "breaker"),
        ),
        # a message that cannot be read is poisoned whatever the policy says
        (
            spec(retry_on=(Exception,)),
            MalformedMessage("not JSON"),
            False,
            0,
            False,
            Outcome(Verdict.POISON, 0, "MalformedMessage: not JSON"),
        ),
        (
            spec(),
            InvalidPayload("bad"),
            False,
            0,
            False,
            Outcome(Verdict.POISON, 0, "InvalidPayload: bad"),
        ),
    ],
)
def test_decide(
    handler: HandlerSpec,
    error: BaseException | None,
    duplicate: bool,
    retries: int,
    decoded: bool,
    expected: Outcome,
) -> None:
    outcome = decide(
        handler,
        error=error,
        duplicate=duplicate,
        retries=retries,
        decoded=decoded,
        uniform=lowest,
    )
    assert outcome == expected
