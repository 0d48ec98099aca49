from mediator import DomainEvent


class Pinged(DomainEvent):
    """`mode` tells the flaky handler how to misbehave; `key` names its Redis keys."""

    event_type = "testapp.Pinged"
    about = "key"

    key: str
    mode: str = "ok"


class Stalled(DomainEvent):
    event_type = "testapp.Stalled"

    key: str


class Parked(DomainEvent):
    """Handled on a queue no test worker consumes: its tasks stay in Redis to be counted."""

    event_type = "testapp.Parked"

    n: int


class DownstreamCalled(DomainEvent):
    """Handled by a handler behind a circuit breaker, on its own queue."""

    event_type = "testapp.DownstreamCalled"

    key: str


class Noted(DomainEvent):
    """Its handler notes which database connection it ran on (mode=fail: then fails)."""

    event_type = "testapp.Noted"

    key: str
    mode: str = "ok"
