"""The ordering app's public contract: the events it publishes."""

from decimal import Decimal

from mediator import DomainEvent


class OrderPlaced(DomainEvent):
    event_type = "ordering.OrderPlaced"
    about = "order_id"

    order_id: int
    customer_id: int
    customer_email: str
    total: Decimal


class OrderCancelled(DomainEvent):
    event_type = "ordering.OrderCancelled"
    about = "order_id"

    order_id: int
    customer_id: int
    customer_email: str
    reason: str
    cancelled_by_id: int | None
