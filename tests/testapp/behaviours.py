"""Behaviours that record, in Redis, when they ran around a test message's
handler, so tests see the order of the chain from outside the worker."""

from typing import Any

from mediator import CallNext, HandlerContext
from mediator.events import Message

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
