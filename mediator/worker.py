"""A Celery consumer that keeps the messages Celery throws away.

Celery logs and drops a message it cannot decode, an invalid one, or one in an
unknown format, so that it does not loop. We drop it too, but first record it
as a PoisonedTask with the raw body, so an operator sees what was lost.
Enabled by CELERY_WORKER_CONSUMER = "mediator.worker:Consumer".
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

from mediator import poison
from mediator.exceptions import MalformedMessage

RAW_BODY_LIMIT = 10_000


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
