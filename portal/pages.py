"""The order page's content, gathered from every app that knows part of it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mediator.models import SagaRun
from mediator.observability.selectors import saga_run
from mediator.observability.timeline import EventTimeline, events_about
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
    checkout: SagaRun | None = None  # a paid order's checkout saga run

    @property
    def settled(self) -> bool:
        """Nothing left to happen on its own: every handler done or poisoned,
        the checkout completed, undone or stuck, every e-mail sent. The page
        stops refreshing itself then."""
        if self.checkout is not None:
            started = self.checkout.finished or self.checkout.state == "stuck"
        else:
            started = bool(self.events)
        return (
            started
            and all(event.settled for event in self.events)
            and all(email.sent_at for email in self.emails)
        )


def order_page(order: Order) -> OrderPage:
    events = events_about("order_id", order.pk)
    emails = list(emails_for_events(event.event_id for event in events))
    checkout = saga_run(order.checkout_run_id) if order.checkout_run_id else None
    if checkout is not None:
        outputs = [step.output or {} for step in checkout.steps.all()]
        ids = [output["email_id"] for output in outputs if output.get("email_id")]
        emails += SentEmail.objects.filter(pk__in=ids)
    return OrderPage(
        order=order,
        shipment=shipment_for_order(order.pk),
        emails=emails,
        events=events,
        checkout=checkout,
    )


# The order page names steps and events in these words, and says what went
# wrong in fixed sentences (portal/templates/portal/_order_live.html), never
# with an exception's text (hosts, ports, driver messages) or a dotted code
# path: those stay on the staff pages (poisoned-task and saga-run admin).


def step_name(handler: str) -> str:
    """A handler's last dotted segment: "shipping.handlers.create_shipment" →
    "create_shipment" (the page's data-handler)."""
    return handler.rsplit(".", 1)[-1]


def step_label(handler: str) -> str:
    """ "shipping.handlers.create_shipment" → "Create shipment"."""
    return step_name(handler).replace("_", " ").strip().capitalize() or "Step"


def event_label(event_type: str) -> str:
    """ "ordering.OrderPlaced" → "Order placed"."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", event_type.rsplit(".", 1)[-1])
    return " ".join(words).capitalize() or "Event"
