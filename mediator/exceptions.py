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
