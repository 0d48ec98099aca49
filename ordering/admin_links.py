"""The poisoned-task admin's links for the shop (MEDIATOR["ADMIN_LINKS"]):
the mediator's own, and the order a payload names."""

from django.urls import NoReverseMatch, reverse

from mediator.delivery.models import PoisonedTask
from mediator.ops.links import Links, default_links, payload_body, reads_payload_keys


@reads_payload_keys("order_id")
def poisoned_task_links(task: PoisonedTask) -> Links:
    links = default_links(task)
    order_id = payload_body(task).get("order_id")
    if order_id is not None:
        try:
            url = reverse("admin:ordering_order_change", args=[order_id])
        except NoReverseMatch:  # not an order id this site can link to
            return links
        links.append((url, f"order_id {order_id}"))
    return links
