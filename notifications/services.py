import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from mediator import current_event_id
from notifications.models import SentEmail

logger = logging.getLogger("notifications")


def send_once(*, kind: str, recipient: str, subject: str, body: str) -> SentEmail | None:
    """Send an e-mail at most once per (event, kind).

    The SentEmail row is written before sending, in the handler's transaction:
    if sending fails, the row rolls back with it and the retry sends again; if
    the row exists, this event's mail of this kind already went out.
    """
    if not recipient:
        logger.warning("no recipient for %s of event %s; nothing sent", kind, current_event_id())
        return None
    event_id = current_event_id()
    try:
        with transaction.atomic():
            record = SentEmail.objects.create(
                event_id=event_id, kind=kind, recipient=recipient, subject=subject, body=body
            )
    except IntegrityError:
        logger.info("%s for event %s was already sent", kind, event_id)
        return None
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient])
    return record
