from mediator import DomainEvent


class Ticked(DomainEvent):
    event_type = "bench.Ticked"

    n: int


class Pinged(DomainEvent):
    """For latency: each handler notes when it started."""

    event_type = "bench.Pinged"

    n: int
    batch: str
