"""A Celery consumer that keeps the messages Celery throws away, and survives
a broker restart.

Celery logs and drops a message it cannot decode, an invalid one, or one in an
unknown format, so that it does not loop. We drop it too, but first record it
as a PoisonedTask with the raw body, so an operator sees what was lost.

It also works around a kombu 5.7 bug that otherwise stops the whole worker
("Unrecoverable error: AttributeError: 'NoneType' object has no attribute
'hostname'") when the Redis connection drops while the worker holds
unacknowledged messages, which with late acks is nearly always: once the
consumer has collected the dead connection, acking, rejecting or restoring a
message asks the transport for connection parameters it no longer has. We
make that a connection error, which Celery already handles (log, reconnect);
the messages are still in Redis's unacked set (restored after
visibility_timeout) or, if Redis lost them, re-sent by the reconciler.

Enabled by CELERY_WORKER_CONSUMER = "mediator.worker.consumer:Consumer".
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis

from mediator.delivery import poison
from mediator.exceptions import MalformedMessage

RAW_BODY_LIMIT = 10_000


def _connection_error_when_collected() -> None:
    redis = getattr(kombu_redis, "redis", None)  # kombu's import of redis-py, if installed
    if redis is None:  # no 'redis' extra: a RabbitMQ broker, nothing to patch
        return
    original = kombu_redis.Channel._connparams  # type: ignore[attr-defined]
    if getattr(original, "mediator_patched", False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was closed")
        return original(self, asynchronous)

    _connparams.mediator_patched = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = _connparams  # type: ignore[attr-defined]


_connection_error_when_collected()


class Consumer(CeleryConsumer):
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        _keep(message, f"cannot decode the message body: {exc}")
        super().on_decode_error(message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        _keep(message, f"invalid task message: {exc}")
        super().on_invalid_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        _keep(message, "message in an unknown format (no task name)")
        super().on_unknown_message(body, message)


def _keep(message: Any, reason: str) -> None:
    headers = getattr(message, "headers", None) or {}
    body = getattr(message, "body", b"")
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    poison.record_in_background(
        handler=str(headers.get("task") or "?")[:200],
        message={"raw_body": raw[:RAW_BODY_LIMIT], "headers": _plain(headers)},
        exception=MalformedMessage(reason),
        traceback_text="",
        attempts=1,
        task_id=str(headers.get("id") or ""),
    )


def _plain(headers: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v)[:500] for k, v in headers.items()}
