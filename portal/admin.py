"""The order admin, with what the other apps know about each order shown
read-only beside it (shipping and notifications have no foreign key to
ordering: they learn of orders through events)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from ordering.admin import OrderAdmin
from ordering.models import Order
from portal.pages import OrderPage, order_page


def _page(order: Order) -> OrderPage:
    """Built once per change page: the three fields below get the same instance."""
    page: OrderPage | None = getattr(order, "_portal_page", None)
    if page is None:
        page = order_page(order)
        order._portal_page = page  # type: ignore[attr-defined]
    return page


class OrderWithContextAdmin(OrderAdmin):
    readonly_fields = [*OrderAdmin.readonly_fields, "shipment", "emails", "events"]

    @admin.display(description="shipment")
    def shipment(self, order: Order) -> str:
        shipment = _page(order).shipment
        if shipment is None:
            return "—"
        url = reverse("admin:shipping_shipment_change", args=[shipment.pk])
        return format_html('<a href="{}">{}</a>', url, shipment.get_status_display())

    @admin.display(description="e-mails")
    def emails(self, order: Order) -> str:
        rows = [
            (email.subject, email.recipient, "sent" if email.sent_at else "queued")
            for email in _page(order).emails
        ]
        return format_html_join("", "<div>{} → {} ({})</div>", rows) or "—"

    @admin.display(description="events and handlers")
    def events(self, order: Order) -> str:
        rows = [
            (
                event.event_type,
                f"{event.occurred_at:%Y-%m-%d %H:%M:%S}",
                ", ".join(f"{h.handler.rsplit('.', 1)[-1]}: {h.state}" for h in event.handlers),
            )
            for event in _page(order).events
        ]
        return format_html_join("", "<div><b>{}</b> {} — {}</div>", rows) or "—"


admin.site.unregister(Order)
admin.site.register(Order, OrderWithContextAdmin)
