"""E-mail with an outbox of its own: recorded once in the handler's
transaction, sent after it commits."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from mediator import current_event_id
from notifications.models import SentEmail

logger = logging.getLogger("notifications")

CLAIM_TIMEOUT = timedelta(minutes=2)  # a claim older than this is taken over


def queue_once(*, kind: str, recipient: str, subject: str, body: str) -> SentEmail | None:
    """Record the e-mail for the running handler's event, once per kind, and
    send it when the handler's transaction commits."""
    event_id = current_event_id()
    if not recipient:
        logger.warning("no recipient for %s of event %s; nothing sent", kind, event_id)
        return None
    try:
        with transaction.atomic():
            email = SentEmail.objects.create(
                event_id=event_id, kind=kind, recipient=recipient, subject=subject, body=body
            )
    except IntegrityError:
        logger.info("%s for event %s was already queued", kind, event_id)
        return None
    email_id = email.pk
    # robust: a failure here must not skip the handler's other callbacks.
    transaction.on_commit(lambda: deliver(email_id), robust=True)
    return email


def deliver(email_id: int) -> bool:
    """Send one queued e-mail unless it is sent or claimed by another sender.
    Never raises: a failure stays queued for send_queued()."""
    now = timezone.now()
    claimed = SentEmail.objects.filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT),
        pk=email_id,
        sent_at__isnull=True,
    ).update(claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return False
    email = SentEmail.objects.get(pk=email_id)
    try:
        EmailMessage(
            email.subject,
            email.body,
            settings.DEFAULT_FROM_EMAIL,
            [email.recipient],
            headers={
                "Message-ID": email.message_id,
                "X-Event-ID": str(email.event_id),
                "X-Mail-Kind": email.kind,
            },
        ).send()
    except Exception as exc:
        logger.warning("sending %s to %s failed: %s", email.kind, email.recipient, exc)
        SentEmail.objects.filter(pk=email_id).update(
            claimed_at=None, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        return False
    SentEmail.objects.filter(pk=email_id).update(sent_at=timezone.now(), last_error="")
    return True


def send_queued(*, older_than: timedelta = timedelta(seconds=30), limit: int = 200) -> int:
    """Send e-mails still queued: their after-commit send failed or never ran."""
    cutoff = timezone.now() - older_than
    ids = SentEmail.objects.filter(sent_at__isnull=True, created_at__lt=cutoff).values_list(
        "pk", flat=True
    )[:limit]
    return sum(deliver(email_id) for email_id in list(ids))
