import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from mediator.context import message_context
from notifications.models import SentEmail
from notifications.services import queue_once, send_queued

pytestmark = pytest.mark.django_db(transaction=True)
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
REFUSING = "tests.testapp.mail.RefusingBackend"


def queue_in_handler(event_id: uuid.UUID, kind: str = "order_confirmation") -> SentEmail | None:
    with (
        message_context(correlation_id=None, causation_id=None, handling=event_id),
        transaction.atomic(),
    ):
        return queue_once(kind=kind, recipient="a@example.com", subject="Hi", body="Body")


@override_settings(EMAIL_BACKEND=LOCMEM)
def test_mail_goes_out_after_commit_once_with_a_stable_message_id() -> None:
    event_id = uuid.uuid4()
    queue_in_handler(event_id)
    assert queue_in_handler(event_id) is None  # the same event again: nothing more
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.extra_headers["Message-ID"] == f"<{event_id}.order_confirmation@mediator.local>"
    assert sent.extra_headers["X-Event-ID"] == str(event_id)
    row = SentEmail.objects.get()
    assert row.sent_at is not None
    assert row.attempts == 1


@override_settings(EMAIL_BACKEND=LOCMEM)
def test_rolled_back_handler_sends_nothing() -> None:
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


def test_refused_mail_stays_queued_and_the_sweep_sends_it_later() -> None:
    event_id = uuid.uuid4()
    with override_settings(EMAIL_BACKEND=REFUSING):
        queue_in_handler(event_id)
    row = SentEmail.objects.get()
    assert row.sent_at is None
    assert row.claimed_at is None
    assert "SMTPRecipientsRefused" in row.last_error
    with override_settings(EMAIL_BACKEND=LOCMEM):
        assert send_queued(older_than=timedelta(0)) == 1
        assert send_queued(older_than=timedelta(0)) == 0
        assert len(mail.outbox) == 1
    row.refresh_from_db()
    assert row.sent_at is not None
    assert row.attempts == 2


@override_settings(EMAIL_BACKEND=LOCMEM)
def test_a_fresh_claim_by_another_sender_is_respected() -> None:
    with override_settings(EMAIL_BACKEND=REFUSING):
        queue_in_handler(uuid.uuid4())
    SentEmail.objects.update(claimed_at=timezone.now())
    assert send_queued(older_than=timedelta(0)) == 0
    SentEmail.objects.update(claimed_at=timezone.now() - timedelta(minutes=5))
    assert send_queued(older_than=timedelta(0)) == 1
