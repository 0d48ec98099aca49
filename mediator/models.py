"""Django's models module of the mediator app: the models live with the
layer that owns them (delivery, sagas); app label and tables are "mediator"."""

from mediator.delivery.models import (
    DeliveryProgress,
    InboxRecord,
    OutboxMessage,
    OutboxStatus,
    PoisonedTask,
    PoisonStatus,
    ProgressState,
)
from mediator.sagas.models import RunState, SagaRun, SagaStep, StepState

__all__ = [
    "DeliveryProgress",
    "InboxRecord",
    "OutboxMessage",
    "OutboxStatus",
    "PoisonStatus",
    "PoisonedTask",
    "ProgressState",
    "RunState",
    "SagaRun",
    "SagaStep",
    "StepState",
]
