"""Testing a project's handlers with the mediator (docs/testing.md).

The pytest plugin (mediator.testing.plugin) is loaded by installing the
package; its fixtures hand out what is below. Importing this package needs
no app registry, and nothing in mediator/ imports it: the names below are
loaded on first use (PEP 562), so the plugin can import it before Django is
set up.

    Outbox, Deliveries, Delivery, Outcome, deliver   in-process (outbox.py, inprocess.py)
    RedisServer, Worker, settle, wait_for, ...        end-to-end (redis_server.py, worker.py)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mediator.testing.broker import using_broker
    from mediator.testing.inprocess import Delivery, Outcome
    from mediator.testing.outbox import Deliveries, Outbox, deliver
    from mediator.testing.ports import free_port
    from mediator.testing.redis_server import RedisNotFound, RedisServer, find_redis_server
    from mediator.testing.settle import settle, unsettled
    from mediator.testing.waiting import wait_for
    from mediator.testing.worker import Worker, worker_argv

_PUBLIC = {
    "Deliveries": "mediator.testing.outbox",
    "Delivery": "mediator.testing.inprocess",
    "Outbox": "mediator.testing.outbox",
    "Outcome": "mediator.testing.inprocess",
    "RedisNotFound": "mediator.testing.redis_server",
    "RedisServer": "mediator.testing.redis_server",
    "Worker": "mediator.testing.worker",
    "deliver": "mediator.testing.outbox",
    "find_redis_server": "mediator.testing.redis_server",
    "free_port": "mediator.testing.ports",
    "settle": "mediator.testing.settle",
    "unsettled": "mediator.testing.settle",
    "using_broker": "mediator.testing.broker",
    "wait_for": "mediator.testing.waiting",
    "worker_argv": "mediator.testing.worker",
}

__all__ = [
    "Deliveries",
    "Delivery",
    "Outbox",
    "Outcome",
    "RedisNotFound",
    "RedisServer",
    "Worker",
    "deliver",
    "find_redis_server",
    "free_port",
    "settle",
    "unsettled",
    "using_broker",
    "wait_for",
    "worker_argv",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'mediator.testing' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
