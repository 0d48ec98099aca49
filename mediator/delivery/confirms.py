"""RabbitMQ publisher confirms, awaited once per batch instead of per message.

Without confirms, a task RabbitMQ never took (the connection dropped after
the write, a queue refusing it) looks sent, and its outbox row would be marked
dispatched. Kombu's `confirm_publish` waits for each message's confirm in
turn: a round trip per task. Here the channel is put in confirm mode once,
every publish on it is counted (the broker numbers them 1, 2, ... per
channel), a batch is published without waiting, and the confirms are awaited
together at the end: a delivery counts as sent when the broker acked every
one of its tasks.

The channel is one of the mediator's own on the pooled producer's
connection, not the pool's channel: other code publishing there (a plain
`task.delay()`) would get confirms nobody reads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import amqp
from kombu import Producer

CONFIRMS_ATTRIBUTE = "_mediator_confirms"
PRODUCER_ATTRIBUTE = "_mediator_confirming_producer"


def confirming_producer(producer: Producer) -> Producer | None:
    """A producer on the same connection as `producer`, on a channel of its own
    in confirm mode; None where confirms do not apply (not AMQP) or Kombu
    already waits for each message (`confirm_publish`)."""
    channel: Any = producer.channel
    if not isinstance(channel, amqp.Channel) or channel.connection is None:
        return None
    if getattr(channel.connection, "confirm_publish", False):
        return None
    connection: Any = producer.connection
    cached: tuple[Producer, Any] | None = getattr(connection, PRODUCER_ATTRIBUTE, None)
    if cached is not None and PublisherConfirms.of(cached[0].channel) is not None:
        return cached[0]
    # None yet, or the one made before can no longer confirm: Kombu's retry
    # revived it onto the connection's default channel, the broker closed its
    # channel (py-amqp reopens it, out of confirm mode), or a publish failed.
    if cached is not None:
        with contextlib.suppress(Exception):
            cached[1].close()
    own = connection.channel()
    setattr(own, CONFIRMS_ATTRIBUTE, PublisherConfirms(own))
    confirming = Producer(own)
    setattr(connection, PRODUCER_ATTRIBUTE, (confirming, own))
    return confirming


class PublisherConfirms:
    """The confirm state of one AMQP channel. Get it with `of(channel)`."""

    def __init__(self, channel: Any) -> None:  # an amqp.Channel
        self.channel = channel
        self.published = 0  # the delivery tag of the last message published
        self.unsettled: set[int] = set()
        self.nacked: set[int] = set()
        self.broken = False  # the count may no longer match the broker's
        channel.confirm_select()
        # py-amqp clears this when it reopens a channel the broker closed (and
        # then no longer confirms): of() reads it. Its own reader, the
        # per-message basic_publish_confirm, is not used on this channel.
        channel._confirm_selected = True
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        publish: Callable[..., Any] = channel.basic_publish

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.published += 1
            self.unsettled.add(self.published)
            try:
                return publish(*args, **kwargs)
            except BaseException:
                # Written or not, the broker's numbering and ours may now differ.
                self.broken = True
                raise

        channel.basic_publish = counted

    @staticmethod
    def of(channel: Any) -> PublisherConfirms | None:
        """The confirm state of a channel `confirming_producer` made, while it
        still confirms and counts true; None for any other channel."""
        if not getattr(channel, "is_open", False) or channel.connection is None:
            return None
        if not getattr(channel, "_confirm_selected", False):
            return None
        confirms: PublisherConfirms | None = getattr(channel, CONFIRMS_ATTRIBUTE, None)
        return None if confirms is None or confirms.broken else confirms

    def _settle(self, tag: int, multiple: bool) -> set[int]:
        settled = {t for t in self.unsettled if t <= tag} if multiple else {tag} & self.unsettled
        self.unsettled -= settled
        return settled

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked |= self._settle(delivery_tag, multiple)

    def wait(self, up_to: int, timeout: float) -> None:
        """Read the broker's confirms until every tag up to `up_to` is settled,
        or `timeout` seconds passed, or the connection failed (those stay
        unsettled)."""
        deadline = time.monotonic() + timeout
        connection = self.channel.connection
        while connection is not None and any(t <= up_to for t in self.unsettled):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                connection.drain_events(timeout=remaining)
            except TimeoutError:
                return
            except Exception:  # the connection or a channel failed: no more confirms here
                self.broken = True
                return

    def taken(self, first: int, last: int) -> bool:
        """Did the broker ack every tag in first..last (none pending, none nacked)?"""
        return not any(first <= t <= last for t in self.unsettled | self.nacked)

    def forget(self, up_to: int) -> None:
        """Drop what is known of tags up to `up_to` once a batch is accounted for."""
        self.nacked = {t for t in self.nacked if t > up_to}
        self.unsettled = {t for t in self.unsettled if t > up_to}
