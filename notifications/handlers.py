from mediator import handles
from notifications.events import EmailQueued
from notifications.services import queue_once, send
from ordering.events import OrderCancelled, OrderPlaced


@handles(OrderPlaced)
def send_order_confirmation(event: OrderPlaced) -> None:
    queue_once(
        kind="order_confirmation",
        recipient=event.customer_email,
        subject=f"Your order #{event.order_id} is confirmed",
        body=f"Thank you for your order #{event.order_id} (total {event.total}).",
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


@handles(EmailQueued, atomic=False, backoff=5.0, backoff_max=120.0)
def send_email(event: EmailQueued) -> None:
    """The SMTP hand-over. Its own delivery: a refusing server is retried with
    backoff (5 s doubling; together longer than a stale claim's timeout), then
    poisoned, visible and retryable in the admin."""
    send(event.email_id)
