"""Read-only questions operators ask of the mediator (health, dashboard)."""

from __future__ import annotations

from django.db.models import Min
from django.utils import timezone

from mediator.models import OutboxMessage, OutboxStatus
from mediator.reconcile import overdue_deliveries

__all__ = ["outbox_lag_seconds", "overdue_deliveries", "pending_count"]


def pending_count() -> int:
    return OutboxMessage.objects.filter(status=OutboxStatus.PENDING).count()


def outbox_lag_seconds() -> float:
    """Age of the oldest event not yet handed to the broker (0 when none)."""
    oldest = OutboxMessage.objects.filter(status=OutboxStatus.PENDING).aggregate(
        oldest=Min("created_at")
    )["oldest"]
    return 0.0 if oldest is None else (timezone.now() - oldest).total_seconds()
