"""Sending outbox rows to the broker: one task per subscribed handler.

Used right after commit (fast path), by the relay (the sweep) and by the
reconciler (deliveries the broker lost). A row is marked dispatched only once
every one of its tasks is with the broker; a row whose publish failed stays
pending for the relay, and the inbox makes the tasks it had already sent
harmless when they are sent again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Celery, current_app
from django.db import connection
from django.db.models import Case, DateTimeField, F, QuerySet, Value, When
from django.utils import timezone
from kombu import Producer

from mediator.conf import mediator_settings
from mediator.delivery.confirms import PublisherConfirms, confirming_producer
from mediator.delivery.models import OutboxMessage, OutboxStatus
from mediator.handlers.registry import handler_registry
from mediator.messages import trace_context

logger = logging.getLogger("mediator.dispatch")


@dataclass
class DispatchResult:
    dispatched: int = 0
    no_handlers: int = 0
    failed: int = 0
    waiting: int = 0  # no handler here yet: left pending for a process that has one
    errors: list[str] = field(default_factory=list)

    def add(self, other: DispatchResult) -> None:
        self.dispatched += other.dispatched
        self.no_handlers += other.no_handlers
        self.failed += other.failed
        self.waiting += other.waiting
        self.errors += other.errors


@dataclass
class Delivery:
    """The tasks of one outbox row: its envelope, to these handlers."""

    row_id: int
    message: dict[str, Any]
    handlers: tuple[str, ...]

    @property
    def argsrepr(self) -> str:
        """What Flower and the worker log show as the task's arguments. Given
        here, so Celery does not saferepr the whole envelope for every task."""
        m = self.message
        return f"({m['event_type']} {m['event_id']} {m['payload']!r:.200})"


def delivery_task_id(event_id: uuid.UUID | str, handler: str) -> str:
    """The same (event, handler) always gets the same task id: a re-sent
    delivery is recognisable in Flower and in the logs."""
    return str(uuid.uuid5(uuid.UUID(str(event_id)), handler))


def send_task(
    app: Celery,
    handler: str,
    message: dict[str, Any],
    *,
    producer: Producer | None = None,
    task_id: str | None = None,
    argsrepr: str | None = None,
    **options: Any,
) -> str:
    """Send one delivery: the handler's task, by name (so a handler removed
    since publishing still gets its message, and the worker poisons it as
    unknown), in the publisher's trace. Returns the task id."""
    with trace_context.within(message.get("traceparent", "")):
        result = app.send_task(
            handler,
            args=(message,),
            task_id=task_id,
            producer=producer,
            retry=True,
            retry_policy=publish_retry_policy(),
            add_to_parent=False,
            argsrepr=argsrepr,
            **options,
        )
    return str(result.id)


@dataclass
class SendOutcome:
    sent: list[Delivery] = field(default_factory=list)
    failed: list[Delivery] = field(default_factory=list)
    error: str = ""


def publish_retry_policy() -> dict[str, Any]:
    conf = mediator_settings()
    interval = float(conf["PUBLISH_RETRY_INTERVAL"])
    return {
        "max_retries": int(conf["PUBLISH_MAX_RETRIES"]),
        "interval_start": 0,
        "interval_step": interval,
        "interval_max": interval,
    }


def send(deliveries: Sequence[Delivery]) -> SendOutcome:
    """Publish the deliveries in order over one producer connection; raises nothing.

    Where the transport can pipeline (Redis), the tasks go out in pipelines of
    PIPELINE_ROWS rows, one round trip each: a row counts as sent once the
    pipeline holding it was executed. A pipeline that fails leaves the broker
    holding an unknown part of it, so its rows and the rest are sent again one
    message at a time, with the publish retries; the inbox absorbs the tasks
    the failed pipeline did deliver. On RabbitMQ every task is published
    without waiting and the broker's confirms are awaited once for the batch
    (mediator.delivery.confirms): a row counts as sent when every one of its
    tasks was acked. Otherwise, and after a failed pipeline, each task is
    published on its own and sending stops at the first broker error (the
    rest would fail the same way).
    """
    outcome = SendOutcome()
    app = current_app
    try:
        with app.producer_or_acquire() as producer:
            if producer.supports_batch_publish:
                rest = _send_pipelined(app, producer, deliveries, outcome)
                _send_one_by_one(app, producer, rest, outcome)
            elif (confirming := confirming_producer(producer)) is not None:
                _send_confirmed(app, confirming, deliveries, outcome)
            else:
                _send_one_by_one(app, producer, deliveries, outcome)
    except Exception as exc:  # acquiring the producer itself failed
        sent = {id(d) for d in outcome.sent}
        outcome.failed = [d for d in deliveries if id(d) not in sent]
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


PIPELINE_ROWS = 100  # rows per Redis pipeline: one round trip, a bounded buffer


def _send_delivery(app: Celery, producer: Producer, delivery: Delivery) -> None:
    argsrepr = delivery.argsrepr  # once per event, not per handler
    for handler in delivery.handlers:
        send_task(
            app,
            handler,
            delivery.message,
            producer=producer,
            task_id=delivery_task_id(delivery.message["event_id"], handler),
            argsrepr=argsrepr,
        )


def _send_pipelined(
    app: Celery, producer: Producer, deliveries: Sequence[Delivery], outcome: SendOutcome
) -> Sequence[Delivery]:
    """Send what pipelines will take; return the deliveries still to send."""
    done = 0
    try:
        batching: Any = producer  # Producer.batch is kombu 5.7's, newer than the type stubs
        with batching.batch(max_size=1_000_000) as batch:  # flushed per chunk, below
            while done < len(deliveries):
                chunk = deliveries[done : done + PIPELINE_ROWS]
                for delivery in chunk:
                    _send_delivery(app, producer, delivery)
                batch.flush()
                outcome.sent.extend(chunk)
                done += len(chunk)
    except Exception as exc:
        logger.warning(
            "pipelined publish failed after %d of %d row(s); sending the rest one by one: %s: %s",
            done, len(deliveries), type(exc).__name__, exc,
        )  # fmt: skip
    return deliveries[done:]


def _send_confirmed(
    app: Celery, producer: Producer, deliveries: Sequence[Delivery], outcome: SendOutcome
) -> None:
    """Publish every delivery, then wait once for the broker's confirms; a
    delivery is sent when all its tasks were acked, failed otherwise."""
    confirms = PublisherConfirms.of(producer.channel)
    published: list[tuple[Delivery, int, int]] = []  # and its first and last tags
    for delivery in deliveries:
        if confirms is None:  # the channel stopped confirming: the rest waits for the relay
            outcome.error = outcome.error or "the publisher-confirm channel closed mid-batch"
            break
        first = confirms.published + 1
        try:
            _send_delivery(app, producer, delivery)
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
            break
        if PublisherConfirms.of(producer.channel) is not confirms:
            # A retried publish reconnected (onto a channel that does not
            # confirm), or a publish failed in a way Celery swallowed (its
            # task-sent event): this row's tasks and the rest are unknown.
            outcome.error = "the publisher-confirm channel changed mid-batch"
            break
        published.append((delivery, first, confirms.published))
    outcome.failed.extend(deliveries[len(published) :])
    if confirms is None or not published:
        return
    timeout = float(mediator_settings()["PUBLISH_CONFIRM_TIMEOUT"])
    last = published[-1][2]
    confirms.wait(last, timeout)
    refused = 0
    for delivery, first, final in published:
        if confirms.taken(first, final):
            outcome.sent.append(delivery)
        else:
            outcome.failed.append(delivery)
            refused += 1
    confirms.forget(last)
    if refused and not outcome.error:
        outcome.error = (
            f"RabbitMQ did not confirm {refused} of {len(published)} row(s) within "
            f"{timeout:g} s (refused with basic.nack, or the connection closed)"
        )


def _send_one_by_one(
    app: Celery, producer: Producer, deliveries: Sequence[Delivery], outcome: SendOutcome
) -> None:
    for index, delivery in enumerate(deliveries):
        try:
            _send_delivery(app, producer, delivery)
        except Exception as exc:
            outcome.failed = list(deliveries[index:])
            outcome.error = f"{type(exc).__name__}: {exc}"
            return
        outcome.sent.append(delivery)


def mark_dispatched(ids: Sequence[int], handlers: Sequence[str], now: datetime) -> None:
    """Mark the rows whose tasks are all with the broker; rows no longer
    pending (a relay got there first) are left as they are."""
    meta = OutboxMessage._meta
    params = [
        OutboxStatus.DISPATCHED.value,
        meta.get_field("dispatched_at").get_db_prep_save(now, connection),
        meta.get_field("handlers").get_db_prep_save(list(handlers), connection),
        OutboxStatus.PENDING.value,
        *ids,
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {connection.ops.quote_name(meta.db_table)} SET status = %s, "
            "dispatched_at = %s, handlers = %s, dispatch_attempts = dispatch_attempts + 1, "
            f"last_error = '' WHERE status = %s AND id IN ({', '.join(['%s'] * len(ids))})",
            params,
        )


def dispatch(rows: Sequence[tuple[int, dict[str, Any]]]) -> DispatchResult:
    """Send the tasks of (row id, envelope message) pairs to the handlers
    subscribed now, then mark the rows: dispatched, still pending with the
    broker's error, waiting for a handler, or no handlers."""
    result = DispatchResult()
    deliveries: list[Delivery] = []
    unheard: list[tuple[int, dict[str, Any]]] = []
    for row_id, message in rows:
        names = tuple(spec.name for spec in handler_registry.for_type(message["event_type"]))
        if names:
            deliveries.append(Delivery(row_id, message, names))
        else:
            unheard.append((row_id, message))
    outcome = send(deliveries)

    now = timezone.now()
    no_handlers, waiting = _no_handlers_yet(unheard, now)

    def pending() -> QuerySet[OutboxMessage]:
        return OutboxMessage.objects.filter(status=OutboxStatus.PENDING)

    by_handlers: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for delivery in outcome.sent:
        by_handlers[delivery.handlers].append(delivery.row_id)
    for names, ids in by_handlers.items():
        mark_dispatched(ids, names, now)
    result.dispatched = len(outcome.sent)
    if no_handlers:
        pending().filter(pk__in=no_handlers).update(
            status=OutboxStatus.NO_HANDLERS, dispatched_at=now, handlers=[]
        )
        result.no_handlers = len(no_handlers)
    if waiting:
        window = mediator_settings()["NO_HANDLERS_AFTER_SECONDS"]
        pending().filter(pk__in=list(waiting)).update(
            created_at=Case(
                *(When(pk=pk, then=Value(at)) for pk, at in waiting.items()),
                output_field=DateTimeField(),
            ),
            dispatch_attempts=F("dispatch_attempts") + 1,
            last_error=f"no handler is registered in the process that looked last; waiting "
            f"{window:g} s from publishing for one that has",
        )
        result.waiting = len(waiting)
    if outcome.failed:
        pending().filter(pk__in=[d.row_id for d in outcome.failed]).update(
            dispatch_attempts=F("dispatch_attempts") + 1, last_error=outcome.error[:2000]
        )
        result.failed = len(outcome.failed)
        result.errors.append(outcome.error)
        logger.warning(
            "broker unreachable: %d outbox row(s) left pending for the relay: %s",
            result.failed, outcome.error,
        )  # fmt: skip
    return result


MIN_LOOK_AGAIN = timedelta(seconds=1)


def _no_handlers_yet(
    rows: Sequence[tuple[int, dict[str, Any]]], now: datetime
) -> tuple[list[int], dict[int, datetime]]:
    """The rows to mark no_handlers, and those to look at again (with when).

    A process that knows no handler for an event may just be older than the
    code that does (a web process during a rolling deploy publishes an event
    whose handler only the new workers register). So a row is marked
    no_handlers only once it is MEDIATOR["NO_HANDLERS_AFTER_SECONDS"] old;
    until then it stays pending and its created_at, the relay's scan column,
    is moved to when it is worth another look: after as long again as it has
    waited (a few looks, at most, in the window; never one per sweep), the
    last at the window's end. The relay's scan stays the one range on the
    pending index, and /readyz's lag does not count a row that is only waiting.
    """
    window = timedelta(seconds=float(mediator_settings()["NO_HANDLERS_AFTER_SECONDS"]))
    give_up: list[int] = []
    look_again: dict[int, datetime] = {}
    for row_id, message in rows:
        try:
            occurred = datetime.fromisoformat(str(message["occurred_at"]))
        except (KeyError, ValueError):
            occurred = now - window  # no time to go by: as old as can wait
        deadline = occurred + window
        if now >= deadline:
            give_up.append(row_id)
        else:
            look_again[row_id] = min(now + max(now - occurred, MIN_LOOK_AGAIN), deadline)
    return give_up, look_again


class BrokerDownPause:
    """After the broker refused a publish, this process leaves new events to
    the relay for a while instead of making every request wait out the
    publish retries again (0.2 s each with the defaults). Any successful send
    ends the pause early."""

    until = 0.0

    @classmethod
    def active(cls) -> bool:
        return time.monotonic() < cls.until

    @classmethod
    def record(cls, result: DispatchResult) -> None:
        if result.failed:
            cls.until = time.monotonic() + float(mediator_settings()["BROKER_DOWN_PAUSE_SECONDS"])
        elif result.dispatched:
            cls.until = 0.0


def dispatch_after_commit(row_id: int, message: dict[str, Any]) -> None:
    """The on_commit callback. It must never raise: Django would skip the
    callbacks registered after it (and so the events published after it)."""
    if BrokerDownPause.active():
        return  # the row stays pending; the relay sends it once the broker is back
    try:
        BrokerDownPause.record(dispatch([(row_id, message)]))
    except Exception:
        logger.exception("dispatch of outbox row %s failed; the relay will retry it", row_id)
