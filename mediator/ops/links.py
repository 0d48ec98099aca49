"""The poisoned-task admin's "see also" links, through an adapter a project
can replace.

MEDIATOR["ADMIN_LINKS"] names a callable `(poisoned_task) -> [(url, label)]`.
The default, `default_links`, links the event's outbox row and the task in
Flower (MEDIATOR["FLOWER_URL"]). A project that wants its own pages too (the
order a payload names, say) writes its own and reuses this one:

    @reads_payload_keys("order_id")
    def poisoned_task_links(task):
        links = default_links(task)
        order_id = payload_body(task).get("order_id")
        if order_id is not None:
            links.append((reverse("admin:ordering_order_change", args=[order_id]), "order"))
        return links

The changelist does not load payloads (a page of them can be megabytes): it
loads only the keys of the event's payload that the adapter declares with
`reads_payload_keys`, as text, and hands the adapter a row whose payload holds
just those. An adapter that declares none sees an empty payload there (its
links still show in full on each row's own page).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.urls import reverse
from django.utils.module_loading import import_string

from mediator.conf import mediator_settings
from mediator.delivery.models import OutboxMessage, PoisonedTask

Links = list[tuple[str, str]]
Adapter = TypeVar("Adapter", bound=Callable[[PoisonedTask], Links])


def reads_payload_keys(*keys: str) -> Callable[[Adapter], Adapter]:
    """Declare the keys of the event's payload an ADMIN_LINKS adapter reads."""

    def declare(adapter: Adapter) -> Adapter:
        adapter.payload_keys = keys  # type: ignore[attr-defined]
        return adapter

    return declare


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


def _adapter() -> Callable[[PoisonedTask], Links]:
    adapter: Callable[[PoisonedTask], Links] = import_string(mediator_settings()["ADMIN_LINKS"])
    return adapter


def poisoned_task_links(task: PoisonedTask) -> Links:
    return _adapter()(task)


def link_payload_keys() -> tuple[str, ...]:
    """What the adapter declared with reads_payload_keys (the changelist loads these)."""
    return tuple(getattr(_adapter(), "payload_keys", ()))
