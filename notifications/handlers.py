from typing import Any

from mediator import handles
from notifications.commands import SendOrderConfirmation
from notifications.events import EmailQueued
from notifications.models import SentEmail
from notifications.services import queue_once, send
from ordering.events import OrderCancelled, OrderPlaced


@handles(OrderPlaced)
def send_order_confirmation(event: OrderPlaced) -> None:
    confirm_order(event)


@handles(SendOrderConfirmation)
def send_paid_order_confirmation(command: SendOrderConfirmation) -> dict[str, Any]:
    email = confirm_order(command)
    return {"email_id": email.pk if email else None}


def confirm_order(message: OrderPlaced | SendOrderConfirmation) -> SentEmail | None:
    return queue_once(
        kind="order_confirmation",
        recipient=message.customer_email,
        subject=f"Your order #{message.order_id} is confirmed",
        body=f"Thank you for your order #{message.order_id} (total {message.total}).",
    )


@handles(OrderCancelled)
def send_cancellation_notice(event: OrderCancelled) -> None:
    reason = f" Reason: {event.reason}." if event.reason else ""
    queue_once(
        kind="order_cancellation",
        recipient=event.customer_email,
        subject=f"Your order #{event.order_id} is cancelled",
        body=f"Your order #{event.order_id} has been cancelled.{reason}",
    )


@handles(EmailQueued, atomic=False, breaker="smtp")
def send_email(event: EmailQueued) -> None:
    """The SMTP hand-over, as a delivery of its own: a server that does not
    answer or answers 4xx is retried with backoff, a 5xx refusal is poisoned at
    once; both are visible and retryable in the admin. Five failures in a row
    open the "smtp" circuit breaker: the e-mails after them wait out its
    cool-down instead of spending their retries on a server that is down."""
    send(event.email_id)
