class MediatorError(Exception):
    """Base class of the mediator's own errors."""


class PublishOutsideTransaction(MediatorError):
    pass


class ImproperEvent(MediatorError):
    """An event class or instance that cannot be published as it is."""


class PermanentError(MediatorError):
    """Raise from a handler for a failure retrying cannot fix: the delivery is
    poisoned at once, with this message as the reason."""


class RetryableError(MediatorError):
    """Raise from a handler for a failure that may pass (a service is down):
    the delivery is retried with backoff."""


class Deferred(RetryableError):
    """Raise from a handler that cannot run *yet* for a reason that clears by
    itself within `countdown` seconds (another worker holds the resource): the
    delivery is tried again then, however many retries it has used. Only for
    conditions that are sure to clear; anything else is a RetryableError."""

    def __init__(self, message: str, *, countdown: float) -> None:
        super().__init__(message)
        self.countdown = countdown


class MessageError(PermanentError):
    """A message the worker cannot run, whatever it retries."""


class MalformedMessage(MessageError):
    pass


class UnknownEventType(MessageError):
    pass


class InvalidPayload(MessageError):
    pass


class UnknownHandler(MessageError):
    pass


class HandlerPoisoned(MediatorError):
    """Raised out of a handler task after its PoisonedTask row was written, so
    Celery and Flower show the task as failed. Not a new failure to record."""


class NoCommandHandler(MediatorError):
    """A command class with no handler, or more than one (system check E005)."""


class CircuitOpen(Deferred):
    """The handler's circuit breaker is open: its downstream is failing. A task
    is deferred until the cool-down ends (no retry spent); send() raises it."""

    def __init__(self, breaker: str, *, countdown: float) -> None:
        super().__init__(
            f"circuit breaker {breaker!r} is open; next probe in {countdown:.1f}s",
            countdown=countdown,
        )
        self.breaker = breaker


class SagaError(MediatorError):
    """A saga declared or started wrongly (mediator.sagas)."""


class StepOutputError(PermanentError):
    """A saga step's handler returned something other than a small JSON dict."""
