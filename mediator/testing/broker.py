"""Pointing this process's Celery app at a test broker, and back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery, current_app

from mediator.resilience import breaker


@contextmanager
def using_broker(url: str, app: Celery | None = None) -> Iterator[None]:
    """Inside the block, publishing (and the circuit breakers, which keep
    their state in the broker's Redis unless MEDIATOR["BREAKER_REDIS_URL"]
    says otherwise) goes to `url`.

    Celery reads CELERY_BROKER_URL from the environment before any setting, so
    both are set; connections already pooled for the old URL are closed.
    """
    app = app or current_app
    saved_env = os.environ.get("CELERY_BROKER_URL")
    saved_conf = app.conf.broker_url
    _switch(app, url)
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        _switch(app, saved_conf, set_env=False)


def _switch(app: Celery, url: Any, *, set_env: bool = True) -> None:
    if set_env:
        os.environ["CELERY_BROKER_URL"] = url
    app.conf.broker_url = url  # type: ignore[misc]  # read-only in the stubs only
    # The pools are made on first use for the URL of that moment; drop them
    # as Celery itself does after a fork (Celery._after_fork).
    pool: Any = app._pool  # type: ignore[attr-defined]
    if pool is not None:
        pool.force_close_all()
        app._pool = None  # type: ignore[attr-defined]
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    breaker.reset_on_setting_changed(setting="CELERY_BROKER_URL")
