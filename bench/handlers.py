"""Two no-op handlers (what remains of a run is the mediator's own work:
envelope, inbox record, progress row, and Celery's) and two that note when
they started, for latency."""

import time

from bench.events import Pinged, Ticked
from bench.models import LatencySample
from mediator import handles


@handles(Ticked)
def noop_a(event: Ticked) -> None:
    return None


@handles(Ticked)
def noop_b(event: Ticked) -> None:
    return None


@handles(Pinged)
def ping_a(event: Pinged) -> None:
    LatencySample.objects.create(batch=event.batch, n=event.n, handler="a", started=time.time())


@handles(Pinged)
def ping_b(event: Pinged) -> None:
    LatencySample.objects.create(batch=event.batch, n=event.n, handler="b", started=time.time())
