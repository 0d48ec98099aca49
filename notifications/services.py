"""E-mail with an outbox of its own: recorded once in the handler's
transaction, then sent by a delivery of its own (notifications.handlers.send_email),
so a refusing mail server is retried with backoff and, if it keeps refusing,
shows up as a poisoned task an operator can retry once it is fixed."""

import logging
import smtplib
import time
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from mediator import Deferred, PermanentError, current_event_id, publish
from notifications.events import EmailQueued
from notifications.models import SentEmail

logger = logging.getLogger("notifications")


MARK_SENT_ATTEMPTS = 3


def claim_timeout() -> timedelta:
    """A claim older than this is taken over: its sender died mid-send. A live
    sender gives up after a few of EMAIL_TIMEOUT's socket timeouts, and after
    the hand-over it may wait out SQLite's lock timeout to mark the e-mail sent.
    Longer would delay a dead sender's e-mail further; a mark that waits on a
    database locked for longer than this can be overtaken by a redelivery."""
    lock_timeout = float(settings.DATABASES["default"].get("OPTIONS", {}).get("timeout", 0))
    return timedelta(seconds=max(30, 3 * settings.EMAIL_TIMEOUT) + lock_timeout)


def queue_once(*, kind: str, recipient: str, subject: str, body: str) -> SentEmail | None:
    """Record the e-mail for the running handler's event, once per kind; it is
    sent after the handler's transaction commits (and never if it rolls back)."""
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
    publish(EmailQueued(email_id=email.pk))
    return email


def is_permanent_refusal(exc: BaseException) -> bool:
    """An SMTP 5xx answer: retrying the same message will not help (4xx and
    connection errors are retried)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


def send(email_id: int) -> bool:
    """Send one queued e-mail unless it was sent already (False then).

    Runs outside any transaction: the claim and the sent mark commit on their
    own, so a failure after the hand-over never sends a second copy. A refusal
    is recorded on the row and raised, for the delivery to retry.
    """
    now = timezone.now()
    claimed = SentEmail.objects.filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - claim_timeout()),
        pk=email_id,
        sent_at__isnull=True,
    ).update(claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        email = SentEmail.objects.filter(pk=email_id).only("sent_at").first()
        if email is None:
            raise PermanentError(f"E-mail #{email_id} does not exist.")
        if email.sent_at is not None:
            return False
        raise Deferred(
            f"E-mail #{email_id} is being sent by another worker.",
            countdown=claim_timeout().total_seconds() / 3,
        )
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
        SentEmail.objects.filter(pk=email_id).update(
            claimed_at=None, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        if is_permanent_refusal(exc):
            raise PermanentError(f"The mail server refused the e-mail for good: {exc}") from exc
        raise
    _mark_sent(email_id)
    return True


def _mark_sent(email_id: int) -> None:
    """After the hand-over, a failure must not let the delivery retry: its
    retry would take the claim over and send a second copy. So keep trying;
    if the database stays out of reach, poison the delivery instead."""
    for attempt in range(1, MARK_SENT_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                SentEmail.objects.filter(pk=email_id).update(sent_at=timezone.now(), last_error="")
            return
        except DatabaseError as exc:
            logger.warning(
                "could not mark e-mail #%s sent (attempt %d): %s", email_id, attempt, exc
            )
            if attempt == MARK_SENT_ATTEMPTS:
                raise PermanentError(
                    f"E-mail #{email_id} was handed to the mail server but could not be "
                    f"marked sent ({exc}); not retried, so no second copy goes out."
                ) from exc
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()  # reconnects on the next query
            time.sleep(0.5 * attempt)
