"""A fake card payment provider, standing in for Stripe and the like.

It behaves as the real ones do where it matters to a saga:
- every charge carries an idempotency key; the same key always gets the same
  outcome (the same charge, or the same decline), however often it is sent;
- it declines some cards: the test token `tok_chargeDeclined` always, and any
  charge at the decline rate;
- it sometimes does not answer (at the error rate): the caller cannot tell
  whether the charge happened, and must retry with the same key;
- its ledger is outside our database (in Redis), so a rolled-back transaction
  does not undo a charge.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import redis
from django.conf import settings

APPROVED_TOKEN = "tok_visa"
DECLINED_TOKEN = "tok_chargeDeclined"
TEST_TOKENS = {
    APPROVED_TOKEN: "Visa ending 4242 (approved)",
    DECLINED_TOKEN: "Visa ending 0002 (declined)",
}
LEDGER = "fakepay:charges"  # idempotency key -> the charge, as JSON
# The sandbox's settings, as a provider's dashboard would hold them: fields
# decline_rate and error_rate override PAYMENT_PROVIDER for every process.
SANDBOX = "fakepay:sandbox"

# Store the charge unless the key has one; return what the key has.
_CHARGE = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return existing end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"""
# Mark a captured charge refunded (once); return the charge, or nil.
_REFUND = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return nil end
local charge = cjson.decode(raw)
if charge['status'] == 'captured' then
  charge['status'] = 'refunded'
  charge['refunds'] = (charge['refunds'] or 0) + 1
  raw = cjson.encode(charge)
  redis.call('HSET', KEYS[1], ARGV[1], raw)
end
return raw
"""


class ProviderTimeout(ConnectionError):
    """The provider did not answer. Retry with the same idempotency key."""


class CardDeclined(Exception):
    def __init__(self, charge_id: str) -> None:
        super().__init__("The card was declined.")
        self.charge_id = charge_id


@dataclass(frozen=True)
class Charge:
    id: str
    amount: Decimal
    status: str  # captured, declined, refunded
    refunds: int = 0
    reference: str = ""  # the merchant's own reference (our order), as Stripe's metadata

    @classmethod
    def from_json(cls, raw: str | bytes) -> Charge:
        data = json.loads(raw)
        return cls(
            id=data["id"],
            amount=Decimal(data["amount_cents"]) / 100,
            status=data["status"],
            refunds=int(data.get("refunds", 0)),
            reference=str(data.get("reference", "")),
        )


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(_setting("REDIS_URL") or settings.REDIS_URL, socket_timeout=5)


def _setting(name: str) -> Any:
    return settings.PAYMENT_PROVIDER[name]


def rate(name: str) -> float:
    """ "decline_rate", "error_rate" or "lost_answer_rate" (charges only): the
    sandbox's, else the setting's."""
    try:
        value = _client().hget(SANDBOX, name)
    except redis.RedisError as exc:
        raise ProviderTimeout(f"The payment provider did not answer: {exc}") from exc
    return float(value) if value is not None else float(_setting(name.upper()))


def configure_sandbox(
    *,
    decline_rate: float | None = None,
    error_rate: float | None = None,
    lost_answer_rate: float | None = None,
) -> None:
    """Set (a number) or clear (None) the sandbox's rates."""
    rates = {
        "decline_rate": decline_rate,
        "error_rate": error_rate,
        "lost_answer_rate": lost_answer_rate,
    }
    for name, value in rates.items():
        if value is None:
            _client().hdel(SANDBOX, name)
        else:
            _client().hset(SANDBOX, name, str(value))


def _time_out_sometimes() -> None:
    """Called before and after the provider acts: half the time-outs lose the
    request, half lose the answer to a charge that was made."""
    if random.random() < rate("error_rate") / 2:
        raise ProviderTimeout("The payment provider did not answer in time.")


def _ledger_eval(script: str, *args: str) -> Any:
    """The provider's side; a Redis failure is the provider not answering."""
    try:
        return _client().eval(script, 1, LEDGER, *args)
    except redis.RedisError as exc:
        raise ProviderTimeout(f"The payment provider did not answer: {exc}") from exc


def charge(*, idempotency_key: str, amount: Decimal, token: str, reference: str = "") -> Charge:
    """Capture `amount` from the card behind `token`; CardDeclined if refused."""
    _time_out_sometimes()
    declined = token == DECLINED_TOKEN or random.random() < rate("decline_rate")
    proposal = {
        "id": f"ch_{uuid.uuid4().hex[:24]}",
        "amount_cents": int((amount * 100).to_integral_value()),
        "status": "declined" if declined else "captured",
        "token": token,
        "reference": reference,
    }
    raw = _ledger_eval(_CHARGE, idempotency_key, json.dumps(proposal))
    if random.random() < rate("lost_answer_rate"):
        raise ProviderTimeout("The payment provider charged, but its answer was lost.")
    _time_out_sometimes()
    result = Charge.from_json(raw)
    if result.status == "declined":
        raise CardDeclined(result.id)
    return result


def refund(*, idempotency_key: str) -> Charge | None:
    """Refund the charge made with this key, once; None if there was none."""
    _time_out_sometimes()
    raw = _ledger_eval(_REFUND, idempotency_key)
    _time_out_sometimes()
    return Charge.from_json(raw) if raw else None


def charge_for(idempotency_key: str) -> Charge | None:
    raw = _client().hget(LEDGER, idempotency_key)
    return Charge.from_json(raw) if raw else None


def ledger() -> dict[str, Any]:
    """Every charge by idempotency key (for reconciliation and tests)."""
    return {
        key.decode() if isinstance(key, bytes) else key: Charge.from_json(raw)
        for key, raw in _client().hgetall(LEDGER).items()
    }
