"""The checkout of a paid order, as a saga: each step in the app that owns it,
undone newest first if a later one fails."""

from mediator import Saga, Step, send_after_commit
from mediator.models import SagaRun, StepState
from notifications.commands import SendOrderConfirmation
from ordering import services
from ordering.commands import ChargePayment, RefundPayment, ReleaseStock, ReserveStock
from shipping.commands import BookShipment, CancelShipmentBooking


class Checkout(Saga):
    """Data: order_id, customer_email, total (str), payment_token, ship_to."""

    name = "ordering.Checkout"
    steps = [
        Step(ReserveStock, compensate=ReleaseStock),
        # The provider may not answer (ProviderTimeout is retried); a declined
        # card fails the step at once.
        Step(ChargePayment, compensate=RefundPayment, retries=4, backoff=1.0, timeout=30),
        Step(BookShipment, compensate=CancelShipmentBooking),
        Step(SendOrderConfirmation),
    ]

    @classmethod
    def on_completed(cls, run: SagaRun) -> None:
        services.checkout_completed(order_id=run.data["order_id"])

    @classmethod
    def on_compensated(cls, run: SagaRun) -> None:
        order_id = run.data["order_id"]
        failed = run.steps.get(index=run.failed_step) if run.failed_step is not None else None
        # The step's error is "Type: message"; a domain refusal's message is
        # written for the customer ("Your card was declined.").
        reason = failed.error.partition(": ")[2] if failed else run.error
        services.checkout_failed(order_id=order_id, reason=reason)
        if run.steps.filter(name="charge_payment", state=StepState.FAILED).exists():
            # A failed step is not compensated, yet the provider may have taken
            # the money before it failed (it timed out, or its process died).
            # Refund by the idempotency key, in a task of its own with retries.
            send_after_commit(RefundPayment(order_id=order_id, saga_run_id=str(run.pk)))
