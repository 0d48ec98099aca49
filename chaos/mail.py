import fcntl
import os
from collections.abc import Sequence

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend


class LedgerBackend(BaseEmailBackend):
    """Stands for the outside world: appends the Message-ID (one per event and
    kind) of every mail actually handed over, and the pid that handed it over,
    so the ledger can count copies and tell which follow a killed sender."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        path = os.environ["CHAOS_MAIL_LEDGER"]
        pid = os.getpid()
        lines = "".join(f"{m.extra_headers.get('Message-ID', '?')} {pid}\n" for m in email_messages)
        with open(path, "a") as ledger:
            fcntl.flock(ledger, fcntl.LOCK_EX)
            ledger.write(lines)
        return len(email_messages)
