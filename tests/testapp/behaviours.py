"""Behaviours that record, in Redis, when they ran around a test message's
handler, so tests see the order of the chain from outside the worker."""

import os
from typing import Any

from mediator import CallNext, HandlerContext, PermanentError
from mediator.messages.base import Message

WATCHED = ("testapp.Probe", "testapp.DownstreamCalled")


def _watch(message: Message) -> str | None:
    key = getattr(message, "key", None)
    return f"chain:{key}" if message.event_type in WATCHED and key else None


def _record(name: str, message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    from tests.testapp.handlers import store

    key = _watch(message)
    if key is None:
        return call_next()
    import os

    store().rpush(key, f"{name}:before:{context.attempt}:{os.getpid()}")
    try:
        result = call_next()
    except Exception as exc:
        store().rpush(key, f"{name}:error:{type(exc).__name__}")
        raise
    store().rpush(key, f"{name}:after")
    return result


def outer(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    return _record("outer", message, context, call_next)


def inner(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """Runs just outside the transaction behaviour; raises when the message asks."""
    mode = getattr(message, "mode", "")
    if mode == "behaviour-fails-once" and context.attempt == 1:
        raise ConnectionError("a behaviour's downstream blinked")
    if mode == "behaviour-bug":
        raise ValueError("a bug in a behaviour")
    return _record("inner", message, context, call_next)


def faults(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """Faults a test plants for one handler's runs on orders, in Redis, so
    they reach the handler in a real worker: `fault:<handler>` is
    - "refuse": raise a PermanentError before the handler runs;
    - "flaky:N": let the handler run, then raise ConnectionError, N times
      (its transaction rolls back, so nothing of it stays);
    - "down:N": raise ConnectionError before the handler runs, N times;
    - "refuse:<text>", "flaky:N:<text>", "down:N:<text>": the exception says <text>;
    - "stall": on the first run only, after the handler ran and before its
      transaction commits, record the process id in `<key>:pid` and wait
      (up to 60 s) for `<key>:go`: the window in which a test kills it.
    """
    order_id = getattr(message, "order_id", None)
    if order_id is None:
        return call_next()
    from tests.testapp.handlers import store

    key = f"fault:{context.handler}"
    planted = store().get(key)
    if planted is None:
        return call_next()
    fault = planted.decode() if isinstance(planted, bytes) else str(planted)
    kind, _, rest = fault.partition(":")
    if kind == "refuse":
        raise PermanentError(rest or f"injected: {context.handler} refuses order {order_id}")
    if kind == "down":
        times, _, text = rest.partition(":")
        if store().incr(f"{key}:runs") <= int(times):
            raise ConnectionError(text or f"injected: {context.handler}'s downstream is down")
    result = call_next()
    if kind == "flaky":
        times, _, text = rest.partition(":")
        if store().incr(f"{key}:runs") <= int(times):
            raise ConnectionError(text or f"injected: {context.handler} lost its connection")
    if kind == "stall" and store().set(f"{key}:stalled", 1, nx=True):
        store().set(f"{key}:pid", os.getpid())
        # Block (60 s at most) until the test's token: its SIGKILL ends this
        # first. BLMOVE onto the same list leaves the token for any later run.
        store().blmove(f"{key}:go", f"{key}:go", 60, "LEFT", "RIGHT")
    return result
