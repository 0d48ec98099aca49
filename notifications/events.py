"""The notifications app's events (its own: sending is a delivery of its own)."""

from mediator import DomainEvent


class EmailQueued(DomainEvent):
    """An e-mail was recorded and is to be sent by notifications.handlers.send_email."""

    event_type = "notifications.EmailQueued"

    email_id: int
