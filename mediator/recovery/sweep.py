"""The periodic sweep: relay what the after-commit path missed, then re-send
what the broker lost. Run by beat (the `mediator.relay_outbox` task) and by
`manage.py relay_outbox`."""

from __future__ import annotations

from dataclasses import dataclass

from celery import shared_task

from mediator.delivery.dispatch import DispatchResult
from mediator.recovery.reconcile import ReconcileResult, reconcile_pass
from mediator.recovery.relay import relay_pending


@dataclass
class SweepResult:
    relayed: DispatchResult
    reconciled: ReconcileResult


def sweep(
    *,
    batch_size: int | None = None,
    grace_seconds: float | None = None,
    redeliver_after: float | None = None,
) -> SweepResult:
    """What the beat task and `relay_outbox` run: relay the pending rows, then
    one reconciliation pass for deliveries the broker lost."""
    relayed = relay_pending(batch_size=batch_size, grace_seconds=grace_seconds)
    reconciled = reconcile_pass(redeliver_after=redeliver_after, batch_size=batch_size)
    return SweepResult(relayed, reconciled)


@shared_task(name="mediator.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    """The beat-scheduled sweep: dispatch rows the after-commit path missed,
    and re-send deliveries the broker lost."""
    result = sweep()
    return result.relayed.dispatched + result.reconciled.redelivered
