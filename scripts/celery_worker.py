"""The shop's worker command line, as the tests, the soak test and the
benchmarks run it: mediator.testing's, for the shop's Celery app."""

from mediator.testing.worker import worker_argv as _worker_argv

APP = "config"


def worker_argv(*, name: str, concurrency: int = 2, loglevel: str = "INFO") -> list[str]:
    return _worker_argv(app=APP, name=name, concurrency=concurrency, loglevel=loglevel)
