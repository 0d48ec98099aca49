"""What of a poisoned delivery the database will take.

A poisoned message comes from anywhere: a foreign publisher, an old process,
a body Celery could not decode. Its row must be written whatever it holds,
the same way on SQLite and PostgreSQL, or the failure is lost (the
background recorder logs and drops it) or loops (the handler path keeps the
message alive until the record is written). So:

- text is cut to its column's length, NUL written as the four characters
  ``\\x00`` and lone surrogates as ``\\udXXX`` (PostgreSQL refuses both);
- a message larger than the publish limit is kept as a prefix of its JSON
  with its size and SHA-256 (``stored_as: "truncated"``): publish() refuses
  such payloads, and a page of poisoned rows must not hold megabytes;
- a message holding what jsonb refuses (NUL, lone surrogates) is kept as its
  JSON text (``stored_as: "json_text"``), which is exactly what arrived.

Neither stored form is an envelope, so neither can be retried from the admin.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mediator.conf import mediator_settings

STORED_AS = "stored_as"  # the key of a payload kept in another form than the message
# Room for the envelope's own fields (ids, type, times) around a payload at the limit.
ENVELOPE_ALLOWANCE = 4096
PREFIX_CHARS = 4096  # of a truncated message's JSON
TEXT_LIMIT = 20_000  # characters of an exception or a traceback


def text(value: Any, limit: int, *, keep: str = "head") -> str:
    """`value` as text PostgreSQL and SQLite both take, at most `limit` characters
    (`keep="tail"`: its end, where a traceback's raise is)."""
    safe = str(value).replace("\x00", "\\x00")
    safe = safe.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(safe) <= limit:
        return safe
    if keep == "tail":
        note = f"[{len(safe) - limit} characters cut] "
        return note + safe[len(safe) - limit + len(note) :]
    return safe[:limit]


def payload(message: Any) -> Any:
    """The message as the poisoned row's payload (JSON the database takes)."""
    try:
        encoded = json.dumps(message)
    except (TypeError, ValueError):
        return {"unserializable": text(repr(message), 10_000)}
    limit = int(mediator_settings()["MAX_PAYLOAD_BYTES"]) + ENVELOPE_ALLOWANCE
    if len(encoded) > limit:  # ASCII: one byte a character
        return {
            STORED_AS: "truncated",
            "note": f"the message was over {limit} bytes of JSON; this is its start",
            "bytes": len(encoded),
            "sha256": hashlib.sha256(encoded.encode("ascii")).hexdigest(),
            "prefix": encoded[:PREFIX_CHARS],
        }
    if "\\u0000" in encoded or not _utf8(json.dumps(message, ensure_ascii=False)):
        return {
            STORED_AS: "json_text",
            "note": "the message holds NUL or lone surrogate characters, which PostgreSQL's "
            "jsonb refuses; this is its JSON text, as received",
            "json": encoded,
        }
    return message


def stored_otherwise(value: Any) -> str | None:
    """The form a stored payload was kept in, if not as the message itself."""
    if isinstance(value, dict) and "unserializable" in value:
        return "repr"
    form = value.get(STORED_AS) if isinstance(value, dict) else None
    return form if isinstance(form, str) else None


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
