from django.db import models
from django.utils import timezone


class Counter(models.Model):
    """The one row a benchmarked request changes."""

    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return str(self.value)


class RawRun(models.Model):
    """What a raw Celery task writes: the one insert a correct handler needs
    anyway, so raw and mediated runs do the same database work."""

    n = models.PositiveBigIntegerField()
    handler = models.CharField(max_length=20)
    at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.handler} {self.n}"


class LatencySample(models.Model):
    """When a handler (or raw task) of one benchmark batch started, in
    time.time() seconds: the publisher knows when it committed."""

    batch = models.CharField(max_length=40, db_index=True)
    n = models.PositiveBigIntegerField()
    handler = models.CharField(max_length=20)
    started = models.FloatField()

    def __str__(self) -> str:
        return f"{self.batch} {self.handler} {self.n}"
