"""The checkout of a paid order, as a saga: each step in the app that owns it,
undone newest first if a later one fails."""

from mediator import Saga, Step
from mediator.models import SagaRun, SagaStep
from notifications.commands import SendOrderConfirmation
from ordering import services
from ordering.commands import ChargePayment, RefundPayment, ReleaseStock, ReserveStock
from shipping.commands import BookShipment, CancelShipmentBooking


class Checkout(Saga):
    """Data: order_id, customer_email, total (str), payment_token, ship_to."""

    name = "ordering.Checkout"
    steps = [
        Step(ReserveStock, compensate=ReleaseStock, backoff=0.5),
        # The provider may not answer (ProviderTimeout is retried); a declined
        # card fails the step at once.
        Step(ChargePayment, compensate=RefundPayment, retries=4, backoff=1.0, timeout=10),
        Step(BookShipment, compensate=CancelShipmentBooking),
        Step(SendOrderConfirmation),
    ]

    @classmethod
    def on_completed(cls, run: SagaRun) -> None:
        services.checkout_completed(order_id=run.data["order_id"])

    @classmethod
    def on_compensated(cls, run: SagaRun) -> None:
        """In the transaction of the last compensation: an exception here
        rolls it back, and that compensation's task tries again."""
        order_id = run.data["order_id"]
        failed = run.steps.get(index=run.failed_step) if run.failed_step is not None else None
        if failed is not None and failed.name == "charge_payment":
            # A failed step is not compensated, yet the provider may have taken
            # the money before it failed (its answer was lost on every try, or
            # its process died). Refund by the idempotency key: a no-op if it
            # charged nothing. The run is compensated only once this is done.
            services.refund_order(
                order_id=order_id, idempotency_key=services.payment_key(str(run.pk))
            )
        services.checkout_failed(order_id=order_id, reason=customer_reason(failed))


# Refusals whose message is written for the customer ("Your card was declined.").
REFUSALS = {"OutOfStock", "PaymentDeclined", "ShippingRefused"}


def customer_reason(failed: SagaStep | None) -> str:
    """What the order page says went wrong: the refusal, or a plain sentence
    (never an exception's name or a stack's words)."""
    kind, _, message = failed.error.partition(": ") if failed else ("", "", "")
    if kind in REFUSALS:
        return message
    step = failed.label.lower() if failed else "check out"
    return f"We could not {step} just now. Nothing was charged; please try again."
