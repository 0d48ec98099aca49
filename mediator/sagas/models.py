"""The state of saga runs and their steps."""

from django.db import models
from django.utils import timezone


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
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)

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
