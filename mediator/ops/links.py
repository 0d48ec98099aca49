"""The poisoned-task admin's "see also" links, through an adapter a project
can replace.

MEDIATOR["ADMIN_LINKS"] names a callable `(poisoned_task) -> [(url, label)]`.
The default, `default_links`, links the event's outbox row and the task in
Flower (MEDIATOR["FLOWER_URL"]). A project that wants its own pages too (the
order a payload names, say) writes its own and reuses this one:

    def poisoned_task_links(task):
        links = default_links(task)
        order_id = (task.payload or {}).get("payload", {}).get("order_id")
        if order_id is not None:
            links.append((reverse("admin:ordering_order_change", args=[order_id]), "order"))
        return links
"""

from __future__ import annotations

from collections.abc import Callable

from django.urls import reverse
from django.utils.module_loading import import_string

from mediator.conf import mediator_settings
from mediator.delivery.models import OutboxMessage, PoisonedTask

Links = list[tuple[str, str]]


def default_links(task: PoisonedTask) -> Links:
    """The event's outbox row, and the task in Flower."""
    links: Links = []
    event = (
        OutboxMessage.objects.filter(event_id=task.event_id).only("pk").first()
        if task.event_id
        else None
    )
    if event is not None:
        links.append((reverse("admin:mediator_outboxmessage_change", args=[event.pk]), "event"))
    flower = mediator_settings()["FLOWER_URL"]
    if flower and task.task_id:
        links.append((f"{flower.rstrip('/')}/task/{task.task_id}", "task in Flower"))
    return links


def payload_body(task: PoisonedTask) -> dict:
    """The event's payload inside the poisoned envelope ({} if there is none)."""
    envelope = task.payload if isinstance(task.payload, dict) else {}
    body = envelope.get("payload")
    return body if isinstance(body, dict) else {}


def poisoned_task_links(task: PoisonedTask) -> Links:
    adapter: Callable[[PoisonedTask], Links] = import_string(mediator_settings()["ADMIN_LINKS"])
    return adapter(task)
