"""The behaviour the handlers layer ships: holding a message to its schema.

The others live with what they use: log, trace and measure in
mediator.observability.behaviours, circuit_breaker in
mediator.resilience.behaviours.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic

from mediator.exceptions import InvalidPayload
from mediator.handlers.pipeline import CallNext, HandlerContext
from mediator.messages.base import Message
from mediator.messages.envelope import check_payload_size


def validate(message: Message, context: HandlerContext, call_next: CallNext) -> Any:
    """Hold the message to its class's schema (strict, as on the wire) and the
    payload size limit; a failure is InvalidPayload, poisoned, never retried.

    A delivery was decoded with exactly this check before the chain ran, so
    this matters for send(): a message built with model_construct(), or
    changed after it was built, does not reach the handler unchecked.
    """
    if not context.delivered:
        raw = json.dumps(message.model_dump(mode="json", warnings=False))
        check_payload_size(message.event_type, len(raw))
        try:
            type(message).model_validate_json(raw, strict=True)
        except pydantic.ValidationError as exc:
            raise InvalidPayload(f"{message.event_type} payload is invalid: {exc}") from None
    return call_next()
