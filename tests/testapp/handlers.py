"""Handlers whose misbehaviour a test chooses through the event's `mode`.

Attempts are counted in Redis, outside the database transaction that a
failure rolls back.
"""

import os
import signal
import threading
import time
import uuid
from typing import Any

import redis
from celery.signals import task_postrun
from django.conf import settings
from django.db import DataError, OperationalError, connection

from mediator import Deferred, PermanentError, current_event_id, handles
from mediator.models import InboxRecord
from tests.testapp.commands import Probe
from tests.testapp.events import DownstreamCalled, Noted, Parked, Pinged, Stalled
from tests.testapp.models import Effect

FLAKY = "tests.testapp.handlers.flaky_ping"
HARD_TIME_LIMIT = 4
_client: redis.Redis | None = None


def store() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL)
    return _client


@handles(Pinged)
def record_ping(event: Pinged) -> None:
    Effect.objects.create(event_id=current_event_id(), handler="record_ping")


@handles(Pinged, max_retries=2, backoff=0.2, backoff_max=0.5)
def flaky_ping(event: Pinged) -> None:
    r = store()
    attempt = r.incr(f"attempts:{event.key}")
    r.rpush(f"attempt-times:{event.key}", time.time())
    Effect.objects.create(event_id=current_event_id(), handler="flaky_ping")
    if event.mode == "fail-twice" and attempt <= 2:
        raise ConnectionError(f"downstream unavailable (attempt {attempt})")
    if event.mode == "always-fail":
        raise ConnectionError(f"downstream unavailable (attempt {attempt})")
    if event.mode == "defer-4-times" and attempt <= 4:
        raise Deferred("the resource is held elsewhere", countdown=0.1)
    if event.mode == "bug":
        raise ValueError("a bug: retrying will not help")
    if event.mode == "broken-until-fixed" and not r.exists(f"fixed:{event.key}"):
        raise PermanentError("mail server refuses the recipient")
    if event.mode == "block":
        r.rpush(f"started:{event.key}", os.getpid())
        # Wait (60 s at most) for the test's release token. BLMOVE onto the same
        # list leaves the token there, even if it is served to a run killed
        # while waiting: every run of this event gets through.
        r.blmove(f"release:{event.key}", f"release:{event.key}", 60, "LEFT", "RIGHT")
    if event.mode == "always-die":
        os.kill(os.getpid(), signal.SIGKILL)
    if event.mode == "data-error":
        # A value the database refuses: PostgreSQL enforces the column's
        # length (a real DataError); SQLite does not, so it is raised by hand.
        if connection.vendor == "postgresql":
            Effect.objects.create(event_id=current_event_id(), handler="x" * 101)
        raise DataError("value too long for type character varying(100)")
    if event.mode == "integrity-error":
        # A real unique violation on both databases: the inbox already holds
        # this delivery's record, claimed in this same transaction.
        InboxRecord.objects.create(event_id=current_event_id(), handler=FLAKY)
    if event.mode == "db-error-once" and attempt == 1:
        # The handler lets a broken database connection's error escape.
        if connection.vendor == "postgresql":  # really lose the connection
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        raise OperationalError("server closed the connection unexpectedly")


@task_postrun.connect
def die_after_commit(sender: Any = None, args: Any = None, **_: Any) -> None:
    """mode=die-after-commit: kill the pool process after the handler's
    transaction committed but before the ack, once."""
    if getattr(sender, "name", "") != FLAKY or not args or not isinstance(args[0], dict):
        return
    payload = args[0].get("payload", {})
    if payload.get("mode") == "die-after-commit" and store().set(
        f"died:{payload['key']}", 1, nx=True
    ):
        os.kill(os.getpid(), signal.SIGKILL)


@handles(Stalled, time_limit=HARD_TIME_LIMIT)
def stall(event: Stalled) -> None:
    """Never returns: only the hard time limit ends it. (Its own event, so the
    limit does not race billiard's detection of killed processes elsewhere.)"""
    threading.Event().wait()


@handles(Parked, queue="parked")
def parked(event: Parked) -> None:
    Effect.objects.create(event_id=current_event_id(), handler="parked")


@handles(Probe, max_retries=2, backoff=0.2, backoff_max=0.5)
def probe(command: Probe) -> int:
    """Writes an Effect; returns value * 2. mode=fail-twice: ConnectionError on
    attempts 1 and 2 (counted in Redis); mode=refuse: PermanentError."""
    Effect.objects.create(event_id=current_event_id(), handler="probe")
    if command.mode == "fail-twice" and store().incr(f"attempts:{command.key}") <= 2:
        raise ConnectionError("downstream unavailable")
    if command.mode == "refuse":
        raise PermanentError("refused")
    return command.value * 2


DOWNSTREAM = "tests.downstream"  # breaker name; thresholds in tests/settings.py


@handles(
    DownstreamCalled, breaker=DOWNSTREAM, queue="breaker", max_retries=3, backoff=0.1,
    backoff_max=0.2, jitter=False,
)  # fmt: skip
def call_downstream(event: DownstreamCalled) -> None:
    """Calls a fake downstream: down while Redis has "downstream:down". Each
    call is logged as "start end pid ok|fail" in "downstream:calls"."""
    r = store()
    started = time.time()
    down = bool(r.exists("downstream:down"))
    time.sleep(0.3)  # a call takes a while: overlapping probes would show
    r.rpush("downstream:calls", f"{started} {time.time()} {os.getpid()} {event.key} "
            + ("fail" if down else "ok"))  # fmt: skip
    if down:
        raise ConnectionError("downstream is down")
    Effect.objects.create(event_id=current_event_id(), handler="call_downstream")


@handles(Noted, queue="connections", max_retries=3, backoff=0.1, backoff_max=0.1, jitter=False)
def note_connection(event: Noted) -> None:
    """Pushes "pid token backend" to Redis "connections:<key>": the token lives
    in a temporary table, which lasts as long as the database connection. On
    its own queue, so only the one-process worker a test starts runs it."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS connection_token (token text)")
        cursor.execute("SELECT token FROM connection_token")
        row = cursor.fetchone()
        if row is None:
            row = (uuid.uuid4().hex,)
            cursor.execute("INSERT INTO connection_token (token) VALUES (%s)", row)
        backend = "-"
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
            backend = str(cursor.fetchone()[0])
    store().rpush(f"connections:{event.key}", f"{os.getpid()} {row[0]} {backend}")
    Effect.objects.create(event_id=current_event_id(), handler="note_connection")
    if event.mode == "fail" and store().incr(f"attempts:{event.key}") == 1:
        raise ConnectionError("downstream unavailable (once)")


if os.environ.get("TESTAPP_NEW_RELEASE"):
    from tests.testapp import new_release  # noqa: F401  (a handler only the newer code has)
