"""The order page's content, gathered from every app that knows part of it."""

from __future__ import annotations

from dataclasses import dataclass

from mediator.timeline import EventTimeline, events_about
from notifications.models import SentEmail
from notifications.selectors import emails_for_events
from ordering.models import Order
from shipping.models import Shipment
from shipping.selectors import shipment_for_order


@dataclass(frozen=True)
class OrderPage:
    order: Order
    shipment: Shipment | None
    emails: list[SentEmail]
    events: list[EventTimeline]

    @property
    def settled(self) -> bool:
        """Nothing left to happen on its own: every handler done or poisoned,
        every e-mail sent. The page stops refreshing itself then."""
        return (
            bool(self.events)
            and all(event.settled for event in self.events)
            and all(email.sent_at for email in self.emails)
        )


def order_page(order: Order) -> OrderPage:
    events = events_about("order_id", order.pk)
    return OrderPage(
        order=order,
        shipment=shipment_for_order(order.pk),
        emails=list(emails_for_events(event.event_id for event in events)),
        events=events,
    )
