import smtplib
from collections.abc import Sequence

import redis
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends import filebased
from django.core.mail.backends.base import BaseEmailBackend


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that refuses every recipient."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        raise smtplib.SMTPRecipientsRefused({"x@example.com": (550, b"mailbox unavailable")})


class BusyBackend(BaseEmailBackend):
    """An SMTP server that asks to try again later (a 4xx answer)."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        raise smtplib.SMTPDataError(451, b"try again later")


class SwitchableBackend(filebased.EmailBackend):
    """The test workers' mail server: a file backend that refuses every
    recipient (550) while the Redis key REFUSE_KEY exists, so a test can break
    it and fix it across processes."""

    REFUSE_KEY = "testmail:refuse"

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if redis.Redis.from_url(settings.REDIS_URL).exists(self.REFUSE_KEY):
            raise smtplib.SMTPRecipientsRefused(
                {m.to[0]: (550, b"mailbox unavailable") for m in email_messages}
            )
        return super().send_messages(email_messages)
