"""Correlation ids from outside (an X-Correlation-ID header, a task message) are
passed on only when they are plain ids: a client cannot forge key=value fields
into the log lines its events cause, nor poison a handler with an id longer
than the columns it is copied into."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from celery import current_app
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from mediator.messages.envelope import Envelope
from mediator.models import InboxRecord, OutboxMessage, PoisonedTask
from mediator.observability.logging import DeliveryContextFilter
from ordering.events import OrderPlaced
from tests.support import Worker, wait_for

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(delivery)s"  # config.settings.LOGGING
PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
FORGED = [
    "x handler=shipping.handlers.evil event_id=forged",
    "ok\tcausation_id=forged",
    "id=forged",
    "a" * 65,
]
CONFIRM = "notifications.handlers.send_order_confirmation"


class Lines(logging.Handler):
    """The console handler's lines (its filter and format), kept in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.addFilter(DeliveryContextFilter())
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def web_log() -> Iterator[Lines]:
    lines = Lines()
    logging.getLogger().addHandler(lines)
    yield lines
    logging.getLogger().removeHandler(lines)


@pytest.mark.django_db
@pytest.mark.parametrize("forged", FORGED)
def test_a_forged_correlation_header_is_replaced_by_a_new_id(
    client: Client, web_log: Lines, forged: str
) -> None:
    client.force_login(User.objects.create_user("mallory", "m@example.com", "pw"))
    response = client.post(
        reverse("orders:order-place-demo"),
        {"sku": "MUG-01", "quantity": "1"},
        headers={"X-Correlation-ID": forged},
    )
    given = response["X-Correlation-ID"]
    assert given != forged
    assert uuid.UUID(given)  # a new one
    placed = OutboxMessage.objects.get(event_type="ordering.OrderPlaced")
    assert placed.correlation_id == given
    lines = [line for line in web_log.lines if "correlation_id=" in line]
    assert lines, "the request logged nothing with its correlation id"
    assert all(f"correlation_id={given}" in line for line in lines)
    assert forged not in "\n".join(web_log.lines)
    assert "forged" not in "\n".join(web_log.lines)


@pytest.mark.django_db
def test_a_plain_correlation_header_is_kept(client: Client) -> None:
    client.force_login(User.objects.create_user("ann", "a@example.com", "pw"))
    plain = "Trace_01.web:42-" + "x" * 48  # 64 characters, every allowed kind
    response = client.post(
        reverse("orders:order-place-demo"),
        {"sku": "MUG-01", "quantity": "1"},
        headers={"X-Correlation-ID": plain},
    )
    assert response["X-Correlation-ID"] == plain
    assert OutboxMessage.objects.get(event_type="ordering.OrderPlaced").correlation_id == plain


@pytest.mark.django_db(transaction=True)
def test_forged_header_reaches_no_worker_log_line(celery_worker: Worker, client: Client) -> None:
    client.force_login(User.objects.create_user("eve", "e@example.com", "pw"))
    forged = "x handler=shipping.handlers.evil event_id=forged"
    response = client.post(
        reverse("orders:order-place-demo"),
        {"sku": "MUG-01", "quantity": "1"},
        headers={"X-Correlation-ID": forged},
    )
    placed = OutboxMessage.objects.get(event_type="ordering.OrderPlaced")
    wait_for(
        lambda: InboxRecord.objects.filter(event_id=placed.event_id, handler=CONFIRM).exists(),
        timeout=60,
        message="the confirmation handler",
    )

    def run_lines() -> list[str]:
        return [ln for ln in celery_worker.log().splitlines() if str(placed.event_id) in ln]

    lines = wait_for(lambda: len(run_lines()) >= 2 and run_lines(), message="log lines")
    assert all(f"correlation_id={response['X-Correlation-ID']} " in ln for ln in lines)
    assert "shipping.handlers.evil" not in celery_worker.log()
    assert "event_id=forged" not in celery_worker.log()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("correlation_id", "causation_id"),
    [("c" * 200, "d" * 200), ("spaced id handler=evil", "cause event_id=forged")],
)
def test_a_task_message_with_a_bad_correlation_id_is_handled_and_publishes_a_plain_one(
    celery_worker: Worker, correlation_id: str, causation_id: str
) -> None:
    event = OrderPlaced(order_id=1, customer_id=1, customer_email="c@example.com", total=Decimal(5))
    message = Envelope.wrap(event, correlation_id=None, causation_id=None).to_message()
    message |= {"correlation_id": correlation_id, "causation_id": causation_id}
    event_id = message["event_id"]

    current_app.send_task(CONFIRM, args=(message,))

    wait_for(
        lambda: (
            InboxRecord.objects.filter(event_id=event_id, handler=CONFIRM).exists()
            or PoisonedTask.objects.filter(event_id=event_id).exists()
        ),
        timeout=60,
        message="the delivery to end",
    )
    assert not PoisonedTask.objects.filter(event_id=event_id).exists()
    queued = OutboxMessage.objects.get(event_type="notifications.EmailQueued")
    # The message's own id stands in for the one that could not be passed on.
    assert queued.correlation_id == event_id
    assert queued.causation_id == event_id
    assert PLAIN_ID.fullmatch(queued.correlation_id)

    def run_lines() -> list[str]:
        return [ln for ln in celery_worker.log().splitlines() if f"event_id={event_id} " in ln]

    lines = wait_for(run_lines, message="the handler's log lines")
    assert all(f"correlation_id={event_id} causation_id=-" in line for line in lines)
    assert "handler=evil" not in celery_worker.log()
    assert "event_id=forged" not in celery_worker.log()
    assert "c" * 65 not in celery_worker.log()
