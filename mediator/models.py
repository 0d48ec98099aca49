from django.db import models
from django.utils import timezone

from mediator.events import Envelope


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
            models.Index(fields=["-created_at"], name="mediator_outbox_created"),
            # The reconciler scans only dispatched rows not yet found settled.
            models.Index(
                fields=["dispatched_at"],
                condition=models.Q(status="dispatched", settled_at__isnull=True),
                name="mediator_outbox_unsettled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> "OutboxMessage":
        return cls(
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            version=envelope.version,
            payload=envelope.payload,
            occurred_at=envelope.occurred_at,
            correlation_id=envelope.correlation_id,
            causation_id=envelope.causation_id,
            traceparent=envelope.traceparent,
        )

    def envelope(self) -> Envelope:
        return Envelope(
            event_id=self.event_id,
            event_type=self.event_type,
            version=self.version,
            occurred_at=self.occurred_at,
            payload=self.payload,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            traceparent=self.traceparent,
        )


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

    def __str__(self) -> str:
        return f"{self.handler} {self.state} (attempt {self.attempt}) on {self.event_id}"


class RunState(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    COMPENSATING = "compensating", "Compensating"
    COMPENSATED = "compensated", "Compensated"
    STUCK = "stuck", "Compensation stuck"


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    COMPENSATING = "compensating", "Compensating"
    COMPENSATED = "compensated", "Compensated"


class SagaRun(models.Model):
    """One run of a saga (mediator.sagas): its input, where it stands, and why
    it stopped. Changed only together with the outbox row of its next step."""

    id = models.UUIDField(primary_key=True)
    saga = models.CharField(max_length=200, db_index=True)
    state = models.CharField(
        max_length=16, choices=RunState.choices, default=RunState.RUNNING, db_index=True
    )
    data = models.JSONField(help_text="The input given to start_saga().")
    current_step = models.PositiveSmallIntegerField(
        default=0, help_text="The step running, or being compensated."
    )
    failed_step = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why the run is compensating, or stuck.")
    correlation_id = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.saga} {self.pk} ({self.get_state_display()})"

    @property
    def finished(self) -> bool:
        return self.state in (RunState.COMPLETED, RunState.COMPENSATED)


class SagaStep(models.Model):
    """One step of a run: its action, its compensation, their tries and output."""

    run = models.ForeignKey(SagaRun, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    action = models.CharField(max_length=200, help_text="The command type the step sends.")
    compensation = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, choices=StepState.choices, default=StepState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="The last error of the action.")
    compensation_attempts = models.PositiveIntegerField(default=0)
    compensation_started_at = models.DateTimeField(null=True, blank=True)
    compensated_at = models.DateTimeField(null=True, blank=True)
    compensation_error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="mediator_sagastep_unique"),
        ]

    def __str__(self) -> str:
        return f"step {self.index + 1} {self.name} ({self.state})"

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()
