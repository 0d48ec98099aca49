from django.db import models


class SentEmail(models.Model):
    """A record of each e-mail sent. (event_id, kind) is unique: the event id is
    the idempotency key that keeps a redelivered event from mailing twice."""

    event_id = models.UUIDField()
    kind = models.CharField(max_length=40)
    recipient = models.EmailField()
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    sent_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "kind"], name="sentemail_unique_event_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient}"
