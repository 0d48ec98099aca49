"""The delivery core's records: outbox rows, inbox records, poisoned
deliveries and the progress of deliveries in flight."""

from django.db import models
from django.utils import timezone


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DISPATCHED = "dispatched", "Dispatched"
    NO_HANDLERS = "no_handlers", "No handlers"


class OutboxMessage(models.Model):
    """An event written in the publisher's transaction: it exists if and only if
    that transaction committed, and stays pending until its tasks are sent."""

    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=200, db_index=True)
    version = models.PositiveSmallIntegerField(default=1)
    payload = models.JSONField()
    occurred_at = models.DateTimeField()
    correlation_id = models.CharField(max_length=64, blank=True)
    causation_id = models.CharField(max_length=64, blank=True)
    traceparent = models.CharField(
        max_length=64, blank=True, help_text="The publisher's W3C trace context, if tracing is on."
    )
    subject = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text='What the event is about ("order_id=42"), from its class\'s `about`.',
    )
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    dispatched_at = models.DateTimeField(null=True, blank=True)
    handlers = models.JSONField(default=list, blank=True, help_text="Handler tasks sent.")
    dispatch_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    settled_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the reconciler found every delivery done or poisoned.",
    )
    redeliveries = models.PositiveIntegerField(
        default=0, help_text="Deliveries the reconciler sent again because the broker lost them."
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The relay scans only pending rows: keep that index small.
            models.Index(
                fields=["created_at"],
                condition=models.Q(status="pending"),
                name="mediator_outbox_pending",
            ),
            # Newest first (the admin), and events per type in a window (the dashboard).
            models.Index(fields=["created_at", "event_type"], name="mediator_outbox_created_type"),
            # The reconciler scans only dispatched rows not yet found settled.
            models.Index(
                fields=["dispatched_at"],
                condition=models.Q(status="dispatched", settled_at__isnull=True),
                name="mediator_outbox_unsettled",
            ),
            # The history of one order (events_about), without a JSON scan.
            # (Not partial: SQLite cannot tell that subject = 'x' implies subject != ''.)
            models.Index(fields=["subject"], name="mediator_outbox_subject"),
            # Retention deletes settled rows by age.
            models.Index(
                fields=["settled_at"],
                condition=models.Q(settled_at__isnull=False),
                name="mediator_outbox_settled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class InboxRecord(models.Model):
    """ "Handler H has applied event E", written in the same transaction as H's
    effect: a redelivered task finds it and skips, so the effect happens once."""

    event_id = models.UUIDField()
    handler = models.CharField(max_length=200)
    handled_at = models.DateTimeField(default=timezone.now)
    duplicates = models.PositiveIntegerField(default=0, help_text="Redeliveries skipped.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id", "handler"], name="mediator_inbox_unique"),
        ]
        # The dashboard counts runs per handler in a window; retention deletes by age.
        indexes = [models.Index(fields=["handled_at", "handler"], name="mediator_inbox_handled")]

    def __str__(self) -> str:
        return f"{self.handler} handled {self.event_id}"


class PoisonStatus(models.TextChoices):
    POISONED = "poisoned", "Poisoned"
    RETRIED = "retried", "Retried"
    RESOLVED = "resolved", "Resolved"
    DISCARDED = "discarded", "Discarded"


class PoisonedTask(models.Model):
    """A delivery that failed for good: retries exhausted, a failure retrying
    cannot fix, or a worker that kept dying. One row per (event, handler)."""

    event_id = models.UUIDField(null=True, blank=True)
    event_type = models.CharField(max_length=200, blank=True, db_index=True)
    handler = models.CharField(max_length=200, db_index=True)
    payload = models.JSONField(null=True, blank=True, help_text="The message as received.")
    exception = models.TextField()
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=PoisonStatus.choices, default=PoisonStatus.POISONED, db_index=True
    )
    task_id = models.CharField(max_length=255, blank=True)
    first_failed_at = models.DateTimeField(default=timezone.now)
    last_failed_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_failed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "handler"], name="mediator_poisoned_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.handler} on {self.event_type or '?'} {self.event_id or ''}".strip()


class ProgressState(models.TextChoices):
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"


class DeliveryProgress(models.Model):
    """Where a delivery stands while it is neither done nor poisoned: which
    attempt is running, or when the next one is due. The inbox record and the
    poisoned row have the last word; this row only fills the gap before them,
    so the order timeline and the dashboard can say "running" or "retrying"."""

    event_id = models.UUIDField()
    handler = models.CharField(max_length=200)
    state = models.CharField(max_length=16, choices=ProgressState.choices)
    attempt = models.PositiveIntegerField(default=1)
    next_try_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "handler"], name="mediator_progress_unique"
            ),
        ]
        # The dashboard counts deliveries retrying now, per handler.
        indexes = [
            models.Index(
                fields=["handler"],
                condition=models.Q(state="retrying"),
                name="mediator_progress_retrying",
            )
        ]

    def __str__(self) -> str:
        return f"{self.handler} {self.state} (attempt {self.attempt}) on {self.event_id}"
