"""`make chaos`: a soak test of the real stack under faults, ending in a ledger.

Runs its own Redis, worker processes and relay against a fresh database,
drives order placements and cancellations through the services while faults
are injected, lets the system settle, then checks that every committed event
reached every handler once (or is poisoned), that no effect or e-mail
happened twice, and that no rolled-back event reached anyone. Exits 1 if not.

    python -m chaos.run --duration 120             # SQLite
    scripts/with-postgres python -m chaos.run      # PostgreSQL
    python -m chaos.run --broker rabbitmq          # a RabbitMQ node of its own as the broker

On Redis the broker faults are Redis killed (SIGKILL) and restarted with its
append-only file, or wiped. On RabbitMQ (quorum queues, config/settings.py)
they are the node killed (SIGKILL) and restarted on the same ports and data
directory, and every task queue purged (the broker that forgets its tasks,
which the reconciler must repair); Redis then only keeps the breakers' state.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from kombu import Connection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.celery_worker import worker_argv  # noqa: E402
from scripts.rabbitmq_server import RabbitMQServer  # noqa: E402
from scripts.redis_server import RedisServer  # noqa: E402


@dataclass
class Stack:
    """The processes under test, each startable and killable by pid."""

    workdir: Path
    env: dict[str, str]
    redis: RedisServer
    rabbitmq: RabbitMQServer | None = None  # the broker, when it is not Redis
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    relay: subprocess.Popen[bytes] | None = None
    started: int = 0
    killed: set[int] = field(default_factory=set)  # worker and pool pids SIGKILLed
    purged: int = 0  # task messages purged from RabbitMQ's queues

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.workdir / f"{name}-{self.started}.log").open("wb")
        return subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def start_worker(self) -> None:
        name = f"chaos-{self.started}@%h"
        self.workers.append(self._spawn("worker", worker_argv(name=name, loglevel="WARNING")))

    def start_relay(self) -> None:
        self.relay = self._spawn(
            "relay", [sys.executable, "manage.py", "relay_outbox", "--loop", "--interval", "1"]
        )

    def revive(self) -> int:
        """Restart processes that exited on their own, as a supervisor
        (systemd, Docker's restart policy) would; returns how many."""
        dead = [w for w in self.workers if w.poll() is not None]
        for worker in dead:
            print(f"  worker pid {worker.pid} exited with {worker.returncode}; restarted")
            self.workers.remove(worker)
            self.start_worker()
        if self.relay is not None and self.relay.poll() is not None:
            print(f"  relay pid {self.relay.pid} exited with {self.relay.returncode}; restarted")
            dead.append(self.relay)
            self.start_relay()
        node = self.rabbitmq
        if node is not None and node.process is not None and node.process.poll() is not None:
            print(f"  RabbitMQ node exited with {node.process.returncode}; restarted")
            node.process = None
            node.start(wait=False)
            return len(dead) + 1
        return len(dead)

    def kill_worker(self) -> None:
        victim = self.workers.pop(random.randrange(len(self.workers)))
        self.killed.update([victim.pid, *_children(victim.pid)])
        _killpg(victim)
        self.start_worker()

    def kill_pool_process(self) -> None:
        pids = _children(random.choice(self.workers).pid)
        if pids:
            pid = random.choice(pids)
            self.killed.add(pid)
            os.kill(pid, signal.SIGKILL)

    def kill_relay(self) -> None:
        if self.relay is not None:
            _killpg(self.relay)
        self.start_relay()

    def restart_redis(self, *, wipe: bool) -> None:
        assert self.redis.process is not None
        self.redis.process.kill()  # no clean shutdown, no final save
        self.redis.process.wait()
        self.redis.process = None
        if wipe and self.redis.data_dir is not None:
            shutil.rmtree(self.redis.data_dir, ignore_errors=True)
        time.sleep(random.uniform(0.5, 3.0))  # the outage
        self.redis.start()

    def kill_rabbitmq(self) -> None:
        """SIGKILL the node (no clean shutdown: what quorum queues wrote to
        disk is all that survives) and start it again on the same ports and
        data directory after an outage; the drive goes on while it boots."""
        assert self.rabbitmq is not None
        self.rabbitmq.kill()
        time.sleep(random.uniform(0.5, 3.0))  # the outage
        self.rabbitmq.start(wait=False)

    def purge_rabbitmq(self) -> None:
        """Empty every queue that holds tasks (ready ones: those a consumer
        holds unacked stay), the retries waiting in the delayed-delivery
        queues too; counts the messages the broker forgot."""
        assert self.rabbitmq is not None
        node = self.rabbitmq
        _wait_for_amqp(node.url)  # a node still booting from the last kill
        names = node.ctl("list_queues", "name", "--no-table-headers").split()
        with Connection(node.url, connect_timeout=5) as conn:
            channel: Any = conn.default_channel
            for name in names:
                if not name.startswith("celeryev") and not name.endswith(".pidbox"):
                    self.purged += channel.queue_purge(name) or 0

    def restart_postgres(self, *, mode: str) -> None:
        """pg_ctl restart of the throwaway server scripts/with-postgres started:
        a fast shutdown ends every session cleanly, an immediate one like a
        crash (recovery on start). Connections held by workers, the relay and
        this driver are all broken."""
        run_as = os.environ.get("WITH_POSTGRES_AS", "").split()
        pg_ctl, data = os.environ["WITH_POSTGRES_PG_CTL"], os.environ["WITH_POSTGRES_DATA"]
        subprocess.run(
            [*run_as, pg_ctl, "-D", data, "-m", mode, "-w", "-t", "60", "restart"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        for process in [*self.workers, *([self.relay] if self.relay else [])]:
            _killpg(process)
        self.redis.stop()
        if self.rabbitmq is not None:
            self.rabbitmq.stop()


def _wait_for_amqp(url: str, timeout: float = 90.0) -> None:
    """Until the broker at `url` takes AMQP connections (cheaper to ask than
    rabbitmqctl, which boots an Erlang VM per call)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with Connection(url, connect_timeout=2) as conn:
                conn.connect()
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def _killpg(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


Fault = Callable[[Stack], None]


def faults_for(broker: str) -> dict[str, Fault]:
    faults: dict[str, Fault] = {
        "kill worker": lambda s: s.kill_worker(),
        "kill pool process": lambda s: s.kill_pool_process(),
        "kill relay": lambda s: s.kill_relay(),
    }
    if broker == "rabbitmq":
        faults["kill rabbitmq (restarted on its data)"] = lambda s: s.kill_rabbitmq()
        faults["purge rabbitmq queues"] = lambda s: s.purge_rabbitmq()
    else:
        faults["restart redis"] = lambda s: s.restart_redis(wipe=False)
        faults["restart redis wiped"] = lambda s: s.restart_redis(wipe=True)
    if os.environ.get("WITH_POSTGRES_DATA"):  # scripts/with-postgres started the database
        faults["restart postgres (fast)"] = lambda s: s.restart_postgres(mode="fast")
        faults["restart postgres (immediate)"] = lambda s: s.restart_postgres(mode="immediate")
    return faults


def drive(
    stack: Stack,
    *,
    faults_to_inject: dict[str, Fault],
    duration: float,
    fault_every: float,
    rollback_rate: float,
    rate: float,
) -> dict[str, Any]:
    """Place and cancel orders for `duration` seconds while injecting faults."""
    from django.contrib.auth.models import User
    from django.db import InterfaceError, OperationalError, connection, transaction

    from mediator.models import OutboxMessage
    from ordering.models import Order, OrderStatus
    from ordering.services import LineItem, OrderError, cancel_order, place_order

    customers = [
        User.objects.get_or_create(username=f"chaos{n}", defaults={"email": f"c{n}@example.com"})[0]
        for n in range(5)
    ]
    item = LineItem(sku="SOAK-1", name="Soak test item", quantity=1, unit_price=Decimal("9.99"))
    rolled_back: set[str] = set()

    def events_of(order_id: int) -> set[str]:
        """The outbox rows about this order that this transaction can see
        (only the driver publishes events naming an order)."""
        rows = OutboxMessage.objects.filter(payload__order_id=order_id)
        return {str(e) for e in rows.values_list("event_id", flat=True)}

    faults: Counter[str] = Counter()
    committed = 0
    db_errors = 0
    crashes = 0
    started = time.monotonic()
    next_fault = started + fault_every
    last_fault = started
    while time.monotonic() - started < duration:
        tick = time.monotonic()
        customer = random.choice(customers)
        roll_back = random.random() < rollback_rate
        try:
            with transaction.atomic():
                placed = Order.objects.filter(owner=customer, status=OrderStatus.PLACED).first()
                if placed is not None and random.random() < 0.3:
                    # Its OrderPlaced, committed before, may still be pending
                    # (the broker was down): not this transaction's event.
                    earlier = events_of(placed.pk)
                    order = cancel_order(order_id=placed.pk, by=customer, reason="soak")
                else:
                    earlier = set()
                    order = place_order(owner=customer, items=[item])
                if roll_back:
                    rolled_back.update(events_of(order.pk) - earlier)
                    raise _RollBack
            committed += 1
        except _RollBack:
            pass
        except OrderError:
            pass
        except (OperationalError, InterfaceError):
            # The database restarted under this request: its transaction did
            # not commit (or, at COMMIT, may have: the ledger reads what is
            # in the outbox, not what this loop counted).
            db_errors += 1
            connection.close()
        crashes += stack.revive()
        if time.monotonic() >= next_fault:
            name = random.choice(list(faults_to_inject))
            faults_to_inject[name](stack)
            faults[name] += 1
            last_fault = time.monotonic()
            next_fault = last_fault + random.uniform(0.5, 1.5) * fault_every
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - tick)))
    return {"rolled_back": rolled_back, "faults": faults, "last_fault": last_fault,
            "transactions_committed": committed, "crashes": crashes,
            "requests_failed_by_database": db_errors,
            "purged_messages": stack.purged if stack.rabbitmq else None}  # fmt: skip


class _RollBack(Exception):
    pass


def settle(stack: Stack, *, timeout: float) -> float | None:
    """Seconds until every delivery is done or poisoned, or None on timeout."""
    from mediator.models import InboxRecord, OutboxMessage, OutboxStatus, PoisonedTask

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        stack.revive()
        expected = _expected_deliveries()
        if not OutboxMessage.objects.filter(status=OutboxStatus.PENDING).exists():
            done: set[tuple[Any, str]] = set(InboxRecord.objects.values_list("event_id", "handler"))
            done |= set(PoisonedTask.objects.values_list("event_id", "handler"))
            if expected <= done:
                return time.monotonic() - started
        time.sleep(1)
    return None


def _expected_deliveries() -> set[tuple[Any, str]]:
    from mediator.handlers.registry import handlers_for
    from mediator.models import OutboxMessage

    return {
        (event_id, spec.name)
        for event_id, event_type in OutboxMessage.objects.values_list("event_id", "event_type")
        for spec in handlers_for(event_type)
    }


def _slowest_deliveries(n: int = 5) -> list[str]:
    """The deliveries that took longest from event to done: where settling time goes."""
    from mediator.models import InboxRecord, OutboxMessage

    occurred = dict(OutboxMessage.objects.values_list("event_id", "occurred_at"))
    redelivered = dict(OutboxMessage.objects.values_list("event_id", "redeliveries"))
    rows = sorted(
        InboxRecord.objects.values_list("event_id", "handler", "handled_at"),
        key=lambda r: r[2] - occurred.get(r[0], r[2]),
        reverse=True,
    )[:n]
    return [
        f"{handler} of {event_id} {(done - occurred[event_id]).total_seconds():.1f}s "
        f"(event redelivered {redelivered[event_id]}x)"
        for event_id, handler, done in rows
        if event_id in occurred
    ]


def mail_copies(mail_ledger: Path, killed: set[int]) -> tuple[int, int, int]:
    """(hand-overs, e-mails handed over more than once, those of them explained
    by a kill). A second copy is explained when every earlier copy was handed
    over by a process this run SIGKILLed and was the last thing that process
    handed over: it died between the hand-over and the "sent" mark, the window
    of at-least-once delivery (docs/reliability.md) that no sender can close."""
    handed: list[tuple[str, int]] = []
    for line in mail_ledger.read_text().splitlines() if mail_ledger.exists() else []:
        message_id, _, pid = line.rpartition(" ")
        handed.append((message_id, int(pid)))
    last_by_pid = {pid: index for index, (_, pid) in enumerate(handed)}
    copies: dict[str, list[int]] = {}
    for index, (message_id, _) in enumerate(handed):
        copies.setdefault(message_id, []).append(index)
    twice = [indexes for indexes in copies.values() if len(indexes) > 1]
    explained = sum(
        1
        for indexes in twice
        if all(handed[i][1] in killed and last_by_pid[handed[i][1]] == i for i in indexes[:-1])
    )
    return len(handed), len(twice), explained


def ledger(
    driven: dict[str, Any],
    mail_ledger: Path,
    settled_after: float | None,
    since_last_fault: float,
    killed: set[int],
) -> tuple[list[tuple[str, Any, bool]], dict[str, Any]]:
    from django.db.models import Count

    from chaos.models import AppliedEffect
    from mediator.models import InboxRecord, OutboxMessage, PoisonedTask, PoisonStatus

    expected = _expected_deliveries()
    done = set(InboxRecord.objects.values_list("event_id", "handler"))
    poisoned_rows = PoisonedTask.objects.filter(status=PoisonStatus.POISONED)
    poisoned: set[tuple[Any, str]] = set(poisoned_rows.values_list("event_id", "handler"))
    without_traceback = poisoned_rows.filter(traceback="").count()
    lost = expected - done - poisoned
    duplicated = (
        AppliedEffect.objects.values("event_id", "handler").annotate(n=Count("id"))
        .filter(n__gt=1).count()
    )  # fmt: skip
    mails, mails_twice, killed_mid_send = mail_copies(mail_ledger, killed)
    unexplained = mails_twice - killed_mid_send
    rolled_back = driven["rolled_back"]
    reached = {str(e) for e in AppliedEffect.objects.values_list("event_id", flat=True)}
    reached |= {str(e) for e, _ in done | poisoned}
    reached |= {str(e) for e in OutboxMessage.objects.values_list("event_id", flat=True)}
    leaked = len(rolled_back & reached)
    lines = [
        ("committed events", OutboxMessage.objects.count(), True),
        ("deliveries expected (events x handlers)", len(expected), True),
        ("done once", len(expected & done), True),
        ("poisoned (with a traceback)", len((expected & poisoned) - done), without_traceback == 0),
        ("LOST", len(lost), not lost),
        ("DUPLICATED database effects", duplicated, duplicated == 0),
        ("e-mails sent", mails, True),
        ("e-mails sent twice: sender killed after hand-over", killed_mid_send, True),
        ("e-mails sent twice otherwise (per event, kind)", unexplained, unexplained == 0),
        ("rolled-back transactions", len(rolled_back), True),
        ("rolled-back events that reached a handler", leaked, leaked == 0),
        ("faults injected", sum(driven["faults"].values()), True),
        ("processes that died on their own (restarted)", driven["crashes"], True),
        ("requests refused by a restarting database", driven["requests_failed_by_database"], True),
        ("settled (s after the last fault)",
         None if settled_after is None else round(since_last_fault + settled_after, 1),
         settled_after is not None),
    ]  # fmt: skip
    if driven["purged_messages"] is not None:
        lines.insert(-1, ("tasks RabbitMQ forgot (purged from its queues)",
                          driven["purged_messages"], True))  # fmt: skip
    details = {
        "faults": dict(driven["faults"]),
        "slowest": _slowest_deliveries(),
        "lost_sample": [list(map(str, x)) for x in list(lost)[:10]],
    }
    return lines, details


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=120, help="seconds of load and faults")
    parser.add_argument("--broker", choices=["redis", "rabbitmq"], default="redis")
    parser.add_argument("--rate", type=float, default=15, help="transactions per second")
    parser.add_argument("--fault-every", type=float, default=4, help="mean seconds between faults")
    parser.add_argument("--transient-rate", type=float, default=0.3)
    parser.add_argument("--rollback-rate", type=float, default=0.15)
    parser.add_argument("--settle-timeout", type=float, default=180)
    parser.add_argument("--json", type=Path, help="write the ledger here too")
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs even on success")
    args = parser.parse_args()
    # SIGTERM (CI timeout, kill) must still stop the workers, relay and Redis.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    mail_ledger = workdir / "mail-ledger.txt"
    redis = RedisServer(data_dir=workdir / "redis").start()
    rabbitmq = None
    try:
        if args.broker == "rabbitmq":
            rabbitmq = RabbitMQServer().start()
        env = dict(os.environ)
        env.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'chaos.sqlite3'}")
        env.update(
            DJANGO_SETTINGS_MODULE="chaos.settings", REDIS_URL=redis.url,
            CELERY_BROKER_URL=rabbitmq.url if rabbitmq else redis.url,
            CHAOS_MAIL_LEDGER=str(mail_ledger), CHAOS_TRANSIENT_RATE=str(args.transient_rate),
        )  # fmt: skip
        os.environ.update(env)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                       env=env, check=True)  # fmt: skip
    except BaseException:
        redis.stop()  # the Stack, which stops them later, does not exist yet
        if rabbitmq is not None:
            rabbitmq.stop()
        raise
    import django

    django.setup()
    from django.db import connection

    stack = Stack(workdir=workdir, env=env, redis=redis, rabbitmq=rabbitmq)
    faults_to_inject = faults_for(args.broker)
    print(f"chaos: {args.duration:.0f}s on {connection.vendor} and {args.broker}, "
          f"logs in {workdir}", flush=True)  # fmt: skip
    try:
        for _ in range(2):
            stack.start_worker()
        stack.start_relay()
        driven = drive(stack, faults_to_inject=faults_to_inject, duration=args.duration,
                       fault_every=args.fault_every, rollback_rate=args.rollback_rate,
                       rate=args.rate)  # fmt: skip
        since_last_fault = time.monotonic() - driven["last_fault"]
        settled_after = settle(stack, timeout=args.settle_timeout)
        lines, details = ledger(driven, mail_ledger, settled_after, since_last_fault, stack.killed)
    finally:
        stack.stop()

    ok = all(good for _, _, good in lines)
    print(f"\nLedger ({connection.vendor}, {args.broker}, {args.duration:.0f}s, "
          f"{driven['transactions_committed']} committed transactions)")  # fmt: skip
    for label, value, good in lines:
        print(f"  {label:<52} {value!s:>8}  {'ok' if good else 'WRONG'}")
    print(f"  faults: {details['faults']}")
    print(f"  slowest deliveries: {details['slowest']}")
    if not ok and details["lost_sample"]:
        print(f"  lost (sample): {details['lost_sample']}")
    if args.json:
        summary = {
            "database": connection.vendor, "broker": args.broker, "duration": args.duration,
            "ok": ok,
            "ledger": {label: value for label, value, _ in lines}, **details,
        }  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2))
    print("chaos:", "PASS" if ok else f"FAIL (logs kept in {workdir})")
    if ok and not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
