"""Raw Celery tasks: the hand-written `on_commit(task.delay)` baseline."""

import time

from celery import shared_task

from bench.models import LatencySample, RawRun


@shared_task(name="bench.raw_a", ignore_result=True, acks_late=True)
def raw_a(n: int) -> None:
    RawRun.objects.create(n=n, handler="a")


@shared_task(name="bench.raw_b", ignore_result=True, acks_late=True)
def raw_b(n: int) -> None:
    RawRun.objects.create(n=n, handler="b")


@shared_task(name="bench.raw_ping_a", ignore_result=True, acks_late=True)
def raw_ping_a(n: int, batch: str) -> None:
    LatencySample.objects.create(batch=batch, n=n, handler="a", started=time.time())


@shared_task(name="bench.raw_ping_b", ignore_result=True, acks_late=True)
def raw_ping_b(n: int, batch: str) -> None:
    LatencySample.objects.create(batch=batch, n=n, handler="b", started=time.time())
