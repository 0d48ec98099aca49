from django.db import models
from django.utils import timezone


class SentEmail(models.Model):
    """An e-mail to send, and then sent, once per (event, kind).

    (event_id, kind) is unique: the row is written in the handler's transaction,
    so a redelivered event finds it and queues nothing. The mail itself goes out
    after that transaction commits (and, if that fails, from the periodic
    sweep), never from inside it: a handler failing after the send would
    otherwise roll the record back and send again on retry.
    """

    event_id = models.UUIDField()
    kind = models.CharField(max_length=40)
    recipient = models.EmailField()
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "kind"], name="sentemail_unique_event_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient}"

    @property
    def message_id(self) -> str:
        """The same for every attempt, so a receiving server can drop a copy
        sent twice (a crash between the SMTP hand-over and the sent mark)."""
        return f"<{self.event_id}.{self.kind}@mediator.local>"
