"""The six scenarios of `make bench`. Each returns the mediator's figure and
raw Celery's from the same run, on the same Redis, database and worker.

Django must be set up (bench.run does it) before these are called.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis as redis_client
from django.db import transaction
from django.db.models import F, Max, Min, Sum
from django.utils import timezone
from kombu import Connection

from bench.events import Pinged, Ticked
from bench.harness import (
    Process,
    Worker,
    check_no_poison,
    clear,
    is_amqp,
    percentile,
    relay_argv,
    wait_until,
)
from bench.models import Counter, LatencySample, RawRun
from bench.tasks import raw_a, raw_b, raw_ping_a, raw_ping_b
from mediator import publish
from mediator.delivery.mapping import row_for
from mediator.messages.envelope import Envelope
from mediator.models import InboxRecord, OutboxMessage, OutboxStatus
from mediator.recovery.relay import relay_pending
from scripts.redis_server import RedisServer


@dataclass
class Stack:
    redis: RedisServer
    env: dict[str, str]
    workdir: Path
    broker_url: str = ""  # the Redis above unless RabbitMQ was given

    def worker(self, **env: str) -> Worker:
        return Worker({**self.env, **env}, self.workdir)

    def queued(self) -> int:
        if is_amqp(self.broker_url):
            with Connection(self.broker_url) as conn:
                channel: Any = conn.default_channel
                return int(channel.queue_declare("celery", passive=True).message_count)
        return int(redis_client.Redis.from_url(self.redis.url).llen("celery"))

    def distinct_queued_ids(self) -> int:
        """Task ids are one per (event, handler): a row sent twice repeats two."""
        ids: set[str] = set()
        if is_amqp(self.broker_url):
            # Read every message off the queue without declaring it: a
            # SimpleQueue would redeclare it classic, and RabbitMQ refuses
            # that for the quorum queue the settings declare.
            with Connection(self.broker_url) as conn:
                channel: Any = conn.default_channel
                while (message := channel.basic_get("celery", no_ack=True)) is not None:
                    ids.add(message.headers["id"])
            return len(ids)
        broker = redis_client.Redis.from_url(self.redis.url)
        for start in range(0, broker.llen("celery"), 10_000):
            for raw in broker.lrange("celery", start, start + 9_999):
                ids.add(json.loads(raw)["headers"]["id"])
        return len(ids)


def inbox_runs() -> int:
    return InboxRecord.objects.count()


def raw_runs() -> int:
    return RawRun.objects.count()


def check_single_deliveries(events: int, *, refused_sends: bool = False) -> None:
    """Every delivery ran once: no row sent twice, no duplicate skipped. A
    send the broker refused counts as an attempt, so with `refused_sends`
    only the duplicates the inbox skipped tell a row that went out twice."""
    runs = inbox_runs()
    skipped = InboxRecord.objects.aggregate(n=Sum("duplicates"))["n"] or 0
    resent = 0 if refused_sends else OutboxMessage.objects.exclude(dispatch_attempts=1).count()
    if runs != 2 * events or skipped or resent:
        raise RuntimeError(
            f"expected {2 * events} single runs; got {runs} runs, {skipped} duplicates "
            f"skipped, {resent} rows dispatched more than once"
        )
    check_no_poison()


# 1 ---------------------------------------------------------------------------


def publish_cost(requests: int) -> tuple[float, float]:
    """µs per request: one row changed + one event (2 handlers) vs. the same
    change + two hand-written on_commit(task.delay). Interleaved in blocks of
    50, so drift in the machine's speed hits both alike."""
    row = Counter.objects.create()

    def mediated(i: int) -> None:
        with transaction.atomic():
            Counter.objects.filter(pk=row.pk).update(value=F("value") + 1)
            publish(Ticked(n=i))

    def raw(i: int) -> None:
        with transaction.atomic():
            Counter.objects.filter(pk=row.pk).update(value=F("value") + 1)
            transaction.on_commit(lambda: raw_a.delay(i))
            transaction.on_commit(lambda: raw_b.delay(i))

    spent = {mediated: 0.0, raw: 0.0}
    for body in spent:  # warm the connections and caches
        for i in range(min(50, requests)):
            body(i)
    for start in range(0, requests, 50):
        for body in spent:
            began = time.perf_counter()
            for i in range(start, min(start + 50, requests)):
                body(i)
            spent[body] += time.perf_counter() - began
    return spent[mediated] / requests * 1e6, spent[raw] / requests * 1e6


# 2 ---------------------------------------------------------------------------


def redis_commands(stack: Stack, reset: bool = False) -> int:
    """Commands the broker's Redis ran since the last reset (INFO commandstats)."""
    broker = redis_client.Redis.from_url(stack.redis.url)
    if reset:
        broker.config_resetstat()
        return 0
    stats: dict[str, dict[str, int]] = broker.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


def throughput(stack: Stack, events: int) -> tuple[float, float, float, float, float]:
    """Handler runs per second of one worker draining a queue filled
    beforehand: n events x 2 handlers vs. 2n raw tasks inserting one row,
    timed from the first run's end to the last one's, in the database; and
    the Redis commands each run cost, publishing and running (on a Redis
    broker; the worker's idle polls included).

    Raw Celery twice: tuned (database connections kept across tasks, as the
    mediator's worker keeps them: the baseline the ratio is taken against)
    and as it comes (CONN_MAX_AGE=0, which is what Celery's Django fixup does
    whatever CONN_MAX_AGE says: a new connection per task)."""

    def drain(count: Callable[[], int], span: Callable[[], tuple[Any, Any]], **env: str) -> float:
        worker = stack.worker(**env)
        try:
            wait_until(lambda: count() >= 2 * events, timeout=1200, what=f"{2 * events} runs")
        finally:
            worker.stop()
        first, last = span()
        return (2 * events - 1) / max((last - first).total_seconds(), 1e-6)

    commands: list[float] = []  # Redis commands per run, publishing and running

    def raw(**env: str) -> float:
        clear(stack.redis.url)
        redis_commands(stack, reset=True)
        for i in range(events):
            raw_a.delay(i)
            raw_b.delay(i)
        rate = drain(
            raw_runs, lambda: tuple(RawRun.objects.aggregate(a=Min("at"), b=Max("at")).values()),
            **env,
        )  # fmt: skip
        commands.append(redis_commands(stack) / (2 * events))
        return rate

    clear(stack.redis.url)
    redis_commands(stack, reset=True)
    for i in range(events):
        with transaction.atomic():
            publish(Ticked(n=i))
    mediated = drain(
        inbox_runs,
        lambda: tuple(
            InboxRecord.objects.aggregate(a=Min("handled_at"), b=Max("handled_at")).values()
        ),
    )
    commands.append(redis_commands(stack) / (2 * events))
    check_single_deliveries(events)
    tuned, stock = raw(), raw(DATABASE_CONN_MAX_AGE="0")
    return mediated, tuned, stock, commands[0], commands[1]


# 3 ---------------------------------------------------------------------------


@dataclass
class CpuShare:
    """Cores kept busy while a latency run published and the worker ran it."""

    publisher: float
    worker: float


def latency_ms(
    kind: str, rate: float, seconds: float, worker: Worker
) -> tuple[list[float], CpuShare]:
    """Publish at `rate` events per second for `seconds`; for each handler
    run, the milliseconds from the publisher's commit to the handler's start,
    and the CPU the publisher and the worker spent meanwhile."""
    batch = f"{kind}-{uuid.uuid4().hex[:12]}"
    committed: dict[int, float] = {}
    count = max(1, round(rate * seconds))
    began = time.monotonic()
    publisher_cpu, worker_cpu = time.process_time(), worker.cpu_seconds()
    for i in range(count):
        pause = began + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the load, not waiting for a result
        with transaction.atomic():
            # Registered first, so it runs right at commit, before the sends.
            transaction.on_commit(lambda i=i: committed.__setitem__(i, time.time()))  # type: ignore[misc]
            if kind == "mediator":
                publish(Pinged(n=i, batch=batch))
            else:
                transaction.on_commit(lambda i=i: raw_ping_a.delay(i, batch))  # type: ignore[misc]
                transaction.on_commit(lambda i=i: raw_ping_b.delay(i, batch))  # type: ignore[misc]
    publisher_cpu = time.process_time() - publisher_cpu
    samples = LatencySample.objects.filter(batch=batch)
    wait_until(lambda: samples.count() >= 2 * count, timeout=600, what=f"{kind} batch {batch}")
    elapsed = time.monotonic() - began
    share = CpuShare(publisher_cpu / elapsed, (worker.cpu_seconds() - worker_cpu) / elapsed)
    if (got := samples.count()) != 2 * count:
        raise RuntimeError(f"latency {kind} batch {batch}: {got} runs for {2 * count} owed")
    values = samples.values_list("n", "started")
    return [(started - committed[n]) * 1000 for n, started in values], share


def latency(stack: Stack, rate: float, seconds: float, runs: int) -> dict[str, list[float]]:
    """p50/p95/p99 per run, mediator and raw alternating on one running worker,
    and the cores the publisher and the worker kept busy (of machine()'s)."""
    worker = stack.worker()
    out: dict[str, list[float]] = {}
    try:
        latency_ms("mediator", 5, 1, worker)  # the worker is up and warm
        latency_ms("raw", 5, 1, worker)
        for _ in range(runs):
            for kind in ("mediator", "raw"):
                values, cpu = latency_ms(kind, rate, seconds, worker)
                for q in (50, 95, 99):
                    out.setdefault(f"{kind}_p{q}", []).append(percentile(values, q))
                out.setdefault(f"{kind}_publisher_cores", []).append(cpu.publisher)
                out.setdefault(f"{kind}_worker_cores", []).append(cpu.worker)
    finally:
        worker.stop()
    check_no_poison()
    return out


# 4 ---------------------------------------------------------------------------


def pending_rows(rows: int, first: int = 0) -> None:
    """`rows` Ticked events pending in the outbox, old enough for any relay."""
    old = timezone.now() - timedelta(hours=1)
    chunk = []
    for i in range(first, first + rows):
        row = row_for(Envelope.wrap(Ticked(n=i), correlation_id="bench", causation_id=""))
        row.created_at = old
        chunk.append(row)
    OutboxMessage.objects.bulk_create(chunk, batch_size=2000)


RELAY = """
import sys, django, redis
django.setup()
from mediator.recovery.relay import relay_pending
r = redis.Redis.from_url(sys.argv[1])
r.incr("bench:ready")
if r.blpop(["bench:go"], timeout=600) is None:  # the start gate: a token each, pushed at once
    sys.exit("no go within 600 s")
print(relay_pending(grace_seconds=0).dispatched)
"""


def relay_drain(stack: Stack, rows: int, relays: int, **env: str) -> float:
    """Rows per second that `relays` relay processes dispatch from a full
    outbox (no worker running); checks each row went out once."""
    import sys

    clear(stack.redis.url)
    pending_rows(rows)
    broker = redis_client.Redis.from_url(stack.redis.url)
    procs = [
        Process([sys.executable, "-c", RELAY, stack.redis.url], {**stack.env, **env},
                stack.workdir / f"relay-{i}-{time.monotonic_ns()}.log")
        for i in range(relays)
    ]  # fmt: skip
    try:
        wait_until(lambda: int(broker.get("bench:ready") or 0) == relays, 120, "relays ready")
        began = time.monotonic()
        broker.rpush("bench:go", *[1] * relays)
        for proc in procs:
            proc.process.wait(3600)
        elapsed = time.monotonic() - began
    finally:
        for proc in procs:
            proc.stop()
    left = OutboxMessage.objects.exclude(status=OutboxStatus.DISPATCHED).count()
    queued, distinct = stack.queued(), stack.distinct_queued_ids()
    if left or queued != 2 * rows or distinct != 2 * rows:
        raise RuntimeError(
            f"relay drain: {left} rows not dispatched, {queued} tasks queued "
            f"({distinct} distinct) for {rows} rows x 2 handlers"
        )
    return rows / elapsed


def raw_producer(stack: Stack, messages: int) -> float:
    """Messages per second of `apply_async` in a loop: what one process can
    put on the broker with no outbox at all."""
    clear(stack.redis.url)
    began = time.monotonic()
    for i in range(messages):
        raw_a.apply_async((i,))
    elapsed = time.monotonic() - began
    if stack.queued() != messages:
        raise RuntimeError(f"raw producer: {stack.queued()} of {messages} queued")
    return messages / elapsed


# 5 ---------------------------------------------------------------------------


@dataclass
class Outage:
    requests: int
    request_ms_p50: float
    request_ms_max: float
    runs_expected: int
    runs_done: int
    recovery_s: float


def outage(stack: Stack, kind: str, events: int, seconds: float) -> Outage:
    """Stop Redis, publish up to `events` events spread over `seconds`, start
    Redis again (same data) and time until every handler run that can
    still happen has happened."""
    clear(stack.redis.url)
    count = runs_done = inbox_runs if kind == "mediator" else raw_runs
    request_ms: list[float] = []
    stack.redis.stop()
    down = time.monotonic()
    try:
        for i in range(events):
            pause = down + i * seconds / events - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif time.monotonic() - down >= seconds:
                break  # the requests took longer than the outage: stop there
            began = time.perf_counter()
            try:
                with transaction.atomic():
                    if kind == "mediator":
                        publish(Ticked(n=i))
                    else:
                        transaction.on_commit(lambda i=i: raw_a.delay(i))  # type: ignore[misc]
                        transaction.on_commit(lambda i=i: raw_b.delay(i))  # type: ignore[misc]
            except Exception:  # raw: the broker error escapes on_commit; the event is lost
                pass
            request_ms.append((time.perf_counter() - began) * 1000)
        rest = down + seconds - time.monotonic()
        if rest > 0:
            time.sleep(rest)  # the outage lasts its full length
    finally:
        stack.redis.start()
    up = time.monotonic()
    # The mediator must deliver every published event; raw Celery can only
    # run what reached the broker, which a down broker never got.
    expected = 2 * len(request_ms) if kind == "mediator" else 2 * queued_or_sent(stack)
    wait_until(lambda: count() >= expected, timeout=1200, what=f"{kind}: {expected} runs")
    recovery = time.monotonic() - up
    if kind == "mediator":
        check_single_deliveries(len(request_ms), refused_sends=True)
    return Outage(
        requests=len(request_ms),
        request_ms_p50=percentile(request_ms, 50),
        request_ms_max=max(request_ms),
        runs_expected=2 * len(request_ms),
        runs_done=runs_done(),
        recovery_s=recovery,
    )


def queued_or_sent(stack: Stack) -> int:
    """Raw tasks that reached the broker: the ones already run plus the ones waiting."""
    return (raw_runs() + stack.queued()) // 2


def recovery(stack: Stack, events: int, seconds: float, runs: int) -> dict[str, list[Outage]]:
    """A worker and a relay loop (as `make run` has them) ride out each outage."""
    worker = stack.worker()
    relay = Process(relay_argv("--loop"), stack.env, stack.workdir / "relay-loop.log")
    out: dict[str, list[Outage]] = {"mediator": [], "raw": []}
    try:
        for _ in range(runs):
            for kind in ("mediator", "raw"):
                out[kind].append(outage(stack, kind, events, seconds))
    finally:
        relay.stop()
        worker.stop()
    return out


# 6 ---------------------------------------------------------------------------


def memory(stack: Stack, kind: str, warmup_runs: int, runs: int) -> tuple[float, float]:
    """Worker RSS (MiB) after `warmup_runs` handler runs and after `runs` more,
    the queue fed while the worker drains it."""
    clear(stack.redis.url)
    count = inbox_runs if kind == "mediator" else raw_runs
    worker = stack.worker()

    def feed(first: int, total: int) -> None:
        if kind == "mediator":
            for start in range(first, first + total // 2, 5000):
                pending_rows(min(5000, first + total // 2 - start), first=start)
                relay_pending(grace_seconds=0)
        else:
            for i in range(first, first + total // 2):
                raw_a.delay(i)
                raw_b.delay(i)

    try:
        feed(0, warmup_runs)
        wait_until(lambda: count() >= warmup_runs, 1200, f"{kind} warm-up")
        warm = worker.rss_bytes()
        feed(warmup_runs // 2, runs)
        wait_until(lambda: count() >= warmup_runs + runs, 7200, f"{kind}: {runs} runs")
        after = worker.rss_bytes()
    finally:
        worker.stop()
    check_no_poison()
    return warm / 2**20, after / 2**20
