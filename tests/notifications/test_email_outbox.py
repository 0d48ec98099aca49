import smtplib
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from mediator import Deferred, PermanentError
from mediator.messages.context import message_context
from mediator.models import OutboxMessage
from mediator.testing import Deliveries, Outcome
from notifications.events import EmailQueued
from notifications.handlers import send_email, send_order_confirmation
from notifications.models import SentEmail
from notifications.services import is_permanent_refusal, queue_once, send
from ordering.events import OrderPlaced

# The test transaction never commits, so nothing is dispatched to a worker:
# these tests call send() themselves.
pytestmark = pytest.mark.django_db
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
REFUSING = "tests.testapp.mail.RefusingBackend"
BUSY = "tests.testapp.mail.BusyBackend"


def queue_in_handler(event_id: uuid.UUID, kind: str = "order_confirmation") -> SentEmail | None:
    with (
        message_context(correlation_id=None, causation_id=None, handling=event_id),
        transaction.atomic(),
    ):
        return queue_once(kind=kind, recipient="a@example.com", subject="Hi", body="Body")


@override_settings(EMAIL_BACKEND=LOCMEM)
def test_queued_once_per_event_and_kind_then_sent_once_with_a_stable_message_id() -> None:
    event_id = uuid.uuid4()
    email = queue_in_handler(event_id)
    assert email is not None
    assert queue_in_handler(event_id) is None  # the same event again: nothing more
    queued = OutboxMessage.objects.get(event_type="notifications.EmailQueued")
    assert queued.payload == {"email_id": email.pk}
    assert mail.outbox == []  # sending is a delivery of its own

    assert send(email.pk) is True
    assert send(email.pk) is False  # a redelivery: already sent, nothing more
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.extra_headers["Message-ID"] == f"<{event_id}.order_confirmation@mediator.local>"
    assert sent.extra_headers["X-Event-ID"] == str(event_id)
    email.refresh_from_db()
    assert email.sent_at is not None
    assert email.attempts == 1


@override_settings(EMAIL_BACKEND=LOCMEM)
def test_an_order_confirmation_is_queued_then_sent_each_once_though_both_are_redelivered(
    mediator_deliver: Callable[..., Deliveries],
) -> None:
    placed = OrderPlaced(order_id=7, customer_id=1, customer_email="a@x.org", total=Decimal(5))
    confirmed = mediator_deliver(placed, handler=send_order_confirmation)
    assert confirmed.redeliver().outcome(send_order_confirmation) == Outcome.DUPLICATE
    email = SentEmail.objects.get()
    assert confirmed.published.messages == [EmailQueued(email_id=email.pk)]
    assert mail.outbox == []  # sending is a delivery of its own

    sent = confirmed.published.deliver()
    assert sent.outcome(send_email) == Outcome.DONE
    assert sent.redeliver().outcome(send_email) == Outcome.DUPLICATE
    assert len(mail.outbox) == 1
    event_id = confirmed[0].envelope.event_id
    assert mail.outbox[0].extra_headers["Message-ID"] == (
        f"<{event_id}.order_confirmation@mediator.local>"
    )


@override_settings(EMAIL_BACKEND=LOCMEM)
def test_rolled_back_handler_queues_and_sends_nothing() -> None:
    event_id = uuid.uuid4()
    with message_context(correlation_id=None, causation_id=None, handling=event_id):
        try:
            with transaction.atomic():
                queue_once(kind="k", recipient="a@example.com", subject="s", body="b")
                raise ConnectionError("the handler failed after queueing")
        except ConnectionError:
            pass
    assert mail.outbox == []
    assert not SentEmail.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_a_busy_server_is_retried_and_the_row_says_why() -> None:
    email = queue_in_handler(uuid.uuid4())
    assert email is not None
    with override_settings(EMAIL_BACKEND=BUSY), pytest.raises(smtplib.SMTPResponseException):
        send(email.pk)
    email.refresh_from_db()
    assert (email.sent_at, email.claimed_at) == (None, None)
    assert "try again later" in email.last_error
    with override_settings(EMAIL_BACKEND=LOCMEM):
        assert send(email.pk) is True
    email.refresh_from_db()
    assert email.attempts == 2
    assert email.last_error == ""


def test_a_refused_recipient_is_a_permanent_failure() -> None:
    email = queue_in_handler(uuid.uuid4())
    assert email is not None
    with (
        override_settings(EMAIL_BACKEND=REFUSING),
        pytest.raises(PermanentError, match="refused the e-mail for good"),
    ):
        send(email.pk)
    email.refresh_from_db()
    assert "SMTPRecipientsRefused" in email.last_error


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}), True),
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no"), "b@x": (451, b"later")}), False),
        (smtplib.SMTPDataError(554, b"rejected"), True),
        (smtplib.SMTPDataError(421, b"busy"), False),
        (smtplib.SMTPServerDisconnected("gone"), False),
        (ConnectionRefusedError(), False),
    ],
)
def test_only_5xx_answers_are_permanent(exc: BaseException, permanent: bool) -> None:
    assert is_permanent_refusal(exc) is permanent


@override_settings(EMAIL_BACKEND=LOCMEM)
def test_a_fresh_claim_by_another_sender_is_respected_a_stale_one_taken_over() -> None:
    email = queue_in_handler(uuid.uuid4())
    assert email is not None
    SentEmail.objects.update(claimed_at=timezone.now())
    with pytest.raises(Deferred, match="being sent by another worker"):
        send(email.pk)
    SentEmail.objects.update(claimed_at=timezone.now() - timedelta(minutes=5))
    assert send(email.pk) is True
    assert len(mail.outbox) == 1


def test_an_unknown_email_is_a_permanent_failure() -> None:
    with pytest.raises(PermanentError, match=r"E-mail #999999 does not exist\."):
        send(999_999)


def refuse_marking_sent() -> None:
    """A real database failure on the 'sent' mark (a trigger), nothing mocked."""
    table = SentEmail._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f"CREATE TRIGGER refuse_sent BEFORE UPDATE OF sent_at ON {table} "
                "WHEN NEW.sent_at IS NOT NULL BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse_sent BEFORE UPDATE OF sent_at ON {table} FOR EACH ROW "
                "WHEN (NEW.sent_at IS NOT NULL) EXECUTE FUNCTION refuse_sent()"
            )


@override_settings(EMAIL_BACKEND=LOCMEM)
def test_a_handed_over_email_that_cannot_be_marked_sent_is_poisoned_not_resent() -> None:
    email = queue_in_handler(uuid.uuid4())
    assert email is not None
    refuse_marking_sent()
    with pytest.raises(PermanentError, match="handed to the mail server but could not be marked"):
        send(email.pk)
    assert len(mail.outbox) == 1
    email.refresh_from_db()
    assert email.sent_at is None
    assert email.claimed_at is not None  # still claimed: a redelivery now is deferred
    with pytest.raises(Deferred, match="being sent by another worker"):
        send(email.pk)
    assert len(mail.outbox) == 1
