"""The checkout saga end to end: real Redis, real `celery worker` processes,
the test database (SQLite or PostgreSQL) shared with them."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from billiard.exceptions import WorkerLostError
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mediator.delivery import poison
from mediator.delivery.dispatch import BrokerDownPause
from mediator.delivery.mapping import wire_message
from mediator.models import (
    InboxRecord,
    OutboxMessage,
    OutboxStatus,
    PoisonedTask,
    PoisonStatus,
    RunState,
    SagaRun,
    SagaStep,
    StepState,
)
from mediator.recovery.reconcile import reconcile_pass
from notifications.models import SentEmail
from ordering import payment_provider
from ordering.models import Order, OrderStatus, Payment, PaymentStatus, StockItem
from ordering.sagas import Checkout
from ordering.services import cancel_order, check_out_demo, payment_key
from shipping.models import Shipment, ShipmentStatus
from tests.mediator.test_metrics import scrape, value
from tests.support import Worker, wait_for
from tests.testapp.handlers import store

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = ["reserve_stock", "charge_payment", "book_shipment", "send_order_confirmation"]
# The command handler each step sends its command to.
HANDLERS = {
    "reserve_stock": "ordering.handlers.reserve_stock",
    "charge_payment": "ordering.handlers.charge_payment",
    "book_shipment": "shipping.handlers.book_shipment",
    "send_order_confirmation": "notifications.handlers.send_paid_order_confirmation",
}
UNDO = {
    "reserve_stock": "ordering.handlers.release_stock",
    "charge_payment": "ordering.handlers.refund_payment",
    "book_shipment": "shipping.handlers.cancel_shipment_booking",
}
STOCK = 50


@pytest.fixture
def shop() -> User:
    StockItem.objects.create(sku="MUG-01", on_hand=STOCK)
    StockItem.objects.create(sku="PEN-03", on_hand=STOCK)
    return User.objects.create_user("carol", "carol@example.com", "pw")


@pytest.fixture(autouse=True)
def clean_faults() -> Iterator[None]:
    store().delete(payment_provider.LEDGER)  # order ids repeat from test to test
    yield
    keys = store().keys("fault:*")
    if keys:
        store().delete(*keys)
    payment_provider.configure_sandbox(decline_rate=None, error_rate=None, lost_answer_rate=None)


def plant(handler: str, fault: str) -> str:
    """Before the order is placed: its first step may run at once."""
    key = f"fault:{handler}"
    store().set(key, fault)
    return key


def buy(customer: User, **options: Any) -> Order:
    chosen: dict[str, Any] = {"sku": "MUG-01", "quantity": 1, "payment_token": "tok_visa"}
    chosen |= {"ship_to": "GB"} | options
    return check_out_demo(owner=customer, **chosen)


def when(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment


def run_id(order: Order) -> uuid.UUID:
    assert order.checkout_run_id is not None
    return order.checkout_run_id


def ended(order: Order, *states: str, timeout: float = 60) -> SagaRun:
    states = states or (RunState.COMPLETED, RunState.COMPENSATED)

    def run() -> SagaRun | None:
        found = SagaRun.objects.get(pk=run_id(order))
        return found if found.state in states else None

    return wait_for(run, timeout=timeout, interval=0.1, message=f"the checkout to be {states}")


def steps(run: SagaRun) -> dict[str, SagaStep]:
    return {step.name: step for step in run.steps.order_by("index")}


def on_hand(sku: str = "MUG-01") -> int:
    return StockItem.objects.get(sku=sku).on_hand


def charge(run: SagaRun) -> payment_provider.Charge | None:
    return payment_provider.charge_for(payment_key(str(run.pk)))


def runs_of(handler: str) -> int:
    """Runs of a step task that did its work (each writes one inbox record)."""
    return InboxRecord.objects.filter(handler=handler).count()


def test_a_paid_order_runs_every_step_once_in_order(celery_worker: Worker, shop: User) -> None:
    order = buy(shop, quantity=2)
    assert order.status == OrderStatus.PENDING
    run = ended(order)

    assert run.state == RunState.COMPLETED
    by_name = steps(run)
    assert list(by_name) == STEPS
    assert all(s.state == StepState.DONE and s.attempts == 1 for s in by_name.values())
    finished = [when(s.finished_at) for s in by_name.values()]
    assert finished == sorted(finished)
    assert by_name["charge_payment"].output == {"charge_id": charge(run).id}  # type: ignore[union-attr]
    order.refresh_from_db()
    assert order.status == OrderStatus.PLACED
    assert on_hand() == STOCK - 2
    payment = Payment.objects.get(order=order)
    assert (payment.amount, payment.status) == (Decimal("25.00"), PaymentStatus.CAPTURED)
    assert charge(run) == payment_provider.Charge(
        payment.charge_id, Decimal("25.00"), "captured", reference=f"order-{order.pk}"
    )
    shipment = Shipment.objects.get(order_id=order.pk)
    assert (shipment.status, shipment.ship_to) == (ShipmentStatus.PENDING, "GB")
    assert by_name["book_shipment"].output == {"shipment_id": shipment.pk}
    email = SentEmail.objects.get(subject=f"Your order #{order.pk} is confirmed")
    assert by_name["send_order_confirmation"].output == {"email_id": email.pk}
    assert "total 25.00" in email.body


@pytest.mark.parametrize("failing", STEPS)
def test_a_failing_step_undoes_exactly_the_steps_before_it_newest_first(
    celery_worker: Worker, shop: User, failing: str
) -> None:
    # The first three fail as they would for real (no stock, a declined
    # card, a country we do not ship to); the confirmation is made to.
    options = {
        "charge_payment": {"payment_token": payment_provider.DECLINED_TOKEN},
        "book_shipment": {"ship_to": "US"},
    }.get(failing, {})
    if failing == "reserve_stock":
        StockItem.objects.filter(sku="MUG-01").update(on_hand=0)
    if failing == "send_order_confirmation":
        plant(HANDLERS[failing], "refuse")
    order = buy(shop, **options)
    run = ended(order)

    assert run.state == RunState.COMPENSATED
    failed_at = STEPS.index(failing)
    by_name = steps(run)
    completed = STEPS[:failed_at]
    undoable = [name for name in completed if name in UNDO]
    assert by_name[failing].state == StepState.FAILED
    assert by_name[failing].attempts == 1  # a refusal is not retried
    assert [s for s in STEPS[failed_at + 1 :] if by_name[s].state != StepState.PENDING] == []
    assert [n for n in STEPS if by_name[n].state == StepState.COMPENSATED] == undoable
    # Newest first, once each.
    undone = sorted(undoable, key=lambda name: when(by_name[name].compensated_at))
    assert undone == undoable[::-1]
    assert all(by_name[name].compensation_attempts == 1 for name in undoable)
    for name in undoable:
        assert runs_of(Checkout.task_name(STEPS.index(name), "compensation")) == 1

    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    assert on_hand() == (0 if failing == "reserve_stock" else STOCK)
    provider = charge(run)
    if failed_at <= 1:
        assert not Payment.objects.filter(order=order).exists()
        assert provider is None or provider.status == "declined"
    else:
        assert (provider.status, provider.refunds) == ("refunded", 1)  # type: ignore[union-attr]
        assert Payment.objects.get(order=order).status == PaymentStatus.REFUNDED
    if failed_at == 3:
        assert Shipment.objects.get(order_id=order.pk).status == ShipmentStatus.CANCELLED
    else:
        assert not Shipment.objects.filter(order_id=order.pk).exists()
    expected = {
        "reserve_stock": "Enamel mug is out of stock (1 wanted).",
        "charge_payment": "Your card was declined",
        "book_shipment": "We do not ship to 'US'",
        # Not a refusal meant for the customer: a plain sentence instead.
        "send_order_confirmation": "We could not send order confirmation just now.",
    }[failing]
    assert order.checkout_error.startswith(expected)
    assert run.error.startswith(f"{failing} failed: ")


def test_a_compensation_that_fails_twice_is_retried_and_then_applied_once(
    celery_worker: Worker, shop: User
) -> None:
    plant(UNDO["charge_payment"], "flaky:2")
    order = buy(shop, ship_to="US")
    run = ended(order)

    assert run.state == RunState.COMPENSATED
    payment_step = steps(run)["charge_payment"]
    assert payment_step.state == StepState.COMPENSATED
    assert payment_step.compensation_attempts == 3
    assert "ConnectionError: injected" in payment_step.compensation_error
    assert (charge(run).status, charge(run).refunds) == ("refunded", 1)  # type: ignore[union-attr]
    assert on_hand() == STOCK
    assert not PoisonedTask.objects.filter(payload__payload__run_id=str(run.pk)).exists()


def test_a_compensation_that_never_succeeds_is_poisoned_and_the_run_says_stuck(
    celery_worker: Worker, shop: User, admin_client: Client
) -> None:
    key = plant(UNDO["reserve_stock"], "flaky:99")
    order = buy(shop, payment_token=payment_provider.DECLINED_TOKEN)
    run = ended(order, RunState.STUCK)

    task = Checkout.task_name(0, "compensation")
    poisoned = PoisonedTask.objects.get(handler=task, status=PoisonStatus.POISONED)
    assert "injected: ordering.handlers.release_stock lost its connection" in poisoned.exception
    assert poisoned.attempts == 6  # its retries (MEDIATOR_MAX_RETRIES, 5) were spent first
    reserve = steps(run)["reserve_stock"]
    assert (reserve.state, reserve.compensation_attempts) == (StepState.COMPENSATING, 6)
    assert on_hand() == STOCK - 1  # not released: that is what is stuck
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING

    # Visible: the runs list filtered by state, the run's page, its timeline.
    listing = admin_client.get(reverse("admin:mediator_sagarun_changelist"), {"state": "stuck"})
    assert str(run.pk) in listing.content.decode()
    assert "1. reserve_stock" in listing.content.decode()  # the step being undone
    page = admin_client.get(
        reverse("admin:mediator_sagarun_change", args=[run.pk])
    ).content.decode()
    assert "Compensation stuck" in page
    assert reverse("admin:mediator_poisonedtask_change", args=[poisoned.pk]) in page
    assert "injected: ordering.handlers.release_stock lost its connection" in page
    dashboard = admin_client.get(reverse("mediator-dashboard")).content.decode()
    assert (
        '<a href="/admin/mediator/sagarun/?saga=ordering.Checkout&amp;state=stuck">stuck</a>'
        in (dashboard)
    )
    stuck = {"saga": "ordering.Checkout", "state": "stuck"}
    assert value(scrape(admin_client), "mediator_saga_runs_unfinished", **stuck) == 1
    finished = {"saga": "ordering.Checkout", "outcome": "compensated"}
    before = value(scrape(admin_client), "mediator_saga_runs_finished_total", **finished)

    # The cause is fixed; the operator retries the poisoned task: the run goes on.
    store().delete(key)
    poison.retry(poisoned)
    run = ended(order, RunState.COMPENSATED)
    assert on_hand() == STOCK
    poisoned.refresh_from_db()
    assert poisoned.status == PoisonStatus.RESOLVED
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    after = scrape(admin_client)
    assert value(after, "mediator_saga_runs_unfinished", **stuck) == 0
    assert value(after, "mediator_saga_runs_finished_total", **finished) == before + 1


@pytest.mark.parametrize(
    ("handler", "options"),
    [
        (HANDLERS["reserve_stock"], {}),
        (HANDLERS["charge_payment"], {}),
        (HANDLERS["book_shipment"], {}),
        (HANDLERS["send_order_confirmation"], {}),
        (UNDO["charge_payment"], {"ship_to": "US"}),
    ],
    ids=["reserve", "charge", "book", "confirm", "refund"],
)
def test_a_worker_killed_during_a_step_leaves_a_run_that_still_ends_right(
    celery_worker: Worker, shop: User, handler: str, options: dict[str, str]
) -> None:
    # The handler has done its work (the provider has charged, say) and its
    # transaction is still open when its process is SIGKILLed.
    key = plant(handler, "stall")
    order = buy(shop, **options)
    pid = int(wait_for(lambda: store().get(f"{key}:pid"), message="the step to stall"))  # type: ignore[call-overload]
    assert pid in celery_worker.pool_pids()
    os.kill(pid, signal.SIGKILL)
    store().rpush(f"{key}:go", 1)
    run = ended(order)

    provider = charge(run)
    if "ship_to" in options:
        assert run.state == RunState.COMPENSATED
        assert steps(run)["charge_payment"].compensation_attempts == 2
        assert (provider.status, provider.refunds) == ("refunded", 1)  # type: ignore[union-attr]
        assert on_hand() == STOCK
        return
    assert run.state == RunState.COMPLETED
    killed = next(s for s in STEPS if HANDLERS[s] == handler)
    assert {n: s.attempts for n, s in steps(run).items()} == {
        n: 2 if n == killed else 1 for n in STEPS
    }
    # Every effect once: the stock, the charge, the shipment, the e-mail.
    assert on_hand() == STOCK - 1
    assert (provider.status, provider.refunds) == ("captured", 0)  # type: ignore[union-attr]
    charges = [c for c in payment_provider.ledger().values() if c.reference == f"order-{order.pk}"]
    assert charges == [provider]
    assert Payment.objects.get(order=order).charge_id == provider.id  # type: ignore[union-attr]
    assert Shipment.objects.filter(order_id=order.pk).count() == 1
    assert SentEmail.objects.filter(subject__contains=f"#{order.pk} is confirmed").count() == 1


def test_200_concurrent_checkouts_with_30_percent_declines_balance_to_the_cent(
    start_worker: Any, celery_worker: Worker, shop: User
) -> None:
    start_worker(concurrency=2)  # two more processes next to the session worker's two
    payment_provider.configure_sandbox(decline_rate=0.3, error_rate=0.1)
    StockItem.objects.filter(sku="MUG-01").update(on_hand=1000)
    StockItem.objects.filter(sku="PEN-03").update(on_hand=1000)
    chooser = random.Random(8)
    orders = [
        buy(shop, sku=chooser.choice(["MUG-01", "PEN-03"]), quantity=chooser.randint(1, 3))
        for _ in range(200)
    ]

    def all_ended() -> bool:
        return not SagaRun.objects.filter(
            state__in=[RunState.RUNNING, RunState.COMPENSATING]
        ).exists()

    wait_for(all_ended, timeout=240, interval=0.5, message="200 checkouts to end")
    runs = {run.pk: run for run in SagaRun.objects.all()}
    states = [runs[run_id(o)].state for o in orders]
    assert set(states) <= {RunState.COMPLETED, RunState.COMPENSATED}
    completed = [o for o, s in zip(orders, states, strict=True) if s == RunState.COMPLETED]
    undone = [o for o, s in zip(orders, states, strict=True) if s == RunState.COMPENSATED]
    assert 20 <= len(undone) <= 100, len(undone)  # about 60 of 200 at 30 %

    # The shelf: what left it is exactly what completed orders hold.
    for sku in ("MUG-01", "PEN-03"):
        sold = sum(i.quantity for o in completed for i in o.items.all() if i.sku == sku)
        assert on_hand(sku) == 1000 - sold
    # The provider's ledger and ours, to the cent; one charge per order at most.
    ledger = payment_provider.ledger()
    ours = {f"order-{o.pk}" for o in orders}
    references = [c.reference for c in ledger.values() if c.reference in ours]
    assert len(references) == len(set(references))
    kept = Decimal("0.00")
    for order in completed + undone:
        entry = ledger.get(payment_key(str(order.checkout_run_id)))
        if entry is not None and entry.status == "captured":
            kept += entry.amount
        if order in completed:
            assert entry is not None
            assert (entry.status, entry.amount) == ("captured", order.total)
        else:
            assert entry is None or entry.status in ("declined", "refunded")
            assert entry is None or entry.refunds <= 1
    assert kept == sum((o.total for o in completed), Decimal("0.00"))
    captured = Payment.objects.filter(order__in=completed + undone, status=PaymentStatus.CAPTURED)
    assert sorted(p.order_id for p in captured) == sorted(o.pk for o in completed)
    assert sum(p.amount for p in captured) == kept
    assert Order.objects.filter(status=OrderStatus.PLACED).count() == len(completed)
    assert Order.objects.filter(status=OrderStatus.FAILED).count() == len(undone)


def test_a_step_message_the_broker_lost_is_sent_again_by_the_reconciler(
    celery_worker: Worker, shop: User
) -> None:
    # The broker is "down" at commit: the first step's message stays in the
    # outbox. Mark it as sent, as if the relay had sent it and Redis had then
    # lost it (restarted without persistence): nothing will deliver it now.
    BrokerDownPause.until = time.monotonic() + 60
    try:
        order = buy(shop)
    finally:
        BrokerDownPause.until = 0.0
    first = Checkout.task_name(0, "action")
    OutboxMessage.objects.filter(event_type=first).update(
        status=OutboxStatus.DISPATCHED,
        handlers=[first],
        dispatched_at=timezone.now() - timedelta(hours=1),
    )
    run = SagaRun.objects.get(pk=run_id(order))
    assert (run.state, steps(run)["reserve_stock"].attempts) == (RunState.RUNNING, 0)

    result = reconcile_pass(redeliver_after=60)
    assert result.redelivered == 1
    assert ended(order).state == RunState.COMPLETED
    assert on_hand() == STOCK - 1


def test_a_step_whose_task_is_poisoned_fails_and_the_saga_compensates(
    celery_worker: Worker, shop: User
) -> None:
    """As when the step's process died on every attempt (Celery then reports
    WorkerLostError) or it ran past its hard time limit."""
    plant(HANDLERS["book_shipment"], "flaky:99")  # keeps the step retrying meanwhile
    order = buy(shop)
    step = Checkout.task_name(2, "action")

    def retrying() -> OutboxMessage | None:
        run = SagaRun.objects.get(pk=run_id(order))
        attempted = steps(run)["book_shipment"].attempts >= 1
        return OutboxMessage.objects.filter(event_type=step).first() if attempted else None

    row = wait_for(retrying, message="the booking to be retrying")
    poisoned = poison.record(
        handler=step,
        message=wire_message(row),
        exception=WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)."),
        traceback_text="",
        attempts=6,
        task_id="",
    )
    run = ended(order)
    assert run.state == RunState.COMPENSATED
    by_name = steps(run)
    assert by_name["book_shipment"].state == StepState.FAILED
    assert by_name["book_shipment"].error.startswith("WorkerLostError: Worker exited")
    assert [by_name[n].state for n in ("reserve_stock", "charge_payment")] == [
        StepState.COMPENSATED, StepState.COMPENSATED,
    ]  # fmt: skip
    assert (charge(run).status, on_hand()) == ("refunded", STOCK)  # type: ignore[union-attr]
    # The saga took the poisoned delivery over: nothing is left for an operator.
    poisoned.refresh_from_db()
    assert poisoned.status == PoisonStatus.RESOLVED
    # The compensations it started carry the run's correlation id.
    undo = OutboxMessage.objects.filter(event_type__endswith=".compensate")
    assert {m.correlation_id for m in undo} == {run.correlation_id}
    order.refresh_from_db()
    assert (
        order.checkout_error
        == "We could not book shipment just now. Nothing was charged; please try again."
    )


def test_a_charge_whose_answer_is_lost_every_time_is_refunded_before_the_run_ends(
    celery_worker: Worker, shop: User
) -> None:
    payment_provider.configure_sandbox(lost_answer_rate=1.0)
    order = buy(shop)
    run = ended(order)

    assert run.state == RunState.COMPENSATED
    by_name = steps(run)
    assert (by_name["charge_payment"].state, by_name["charge_payment"].attempts) == (
        StepState.FAILED, 5,
    )  # fmt: skip
    assert "its answer was lost" in by_name["charge_payment"].error
    # The provider took the money on the first try (the retries found that
    # charge by its key); the step never recorded it, so the saga's
    # on_compensated refunded it, once, before the run counted as compensated.
    assert (charge(run).status, charge(run).refunds) == ("refunded", 1)  # type: ignore[union-attr]
    assert not Payment.objects.filter(order=order).exists()
    assert on_hand() == STOCK


def test_cancelling_a_completed_paid_order_refunds_it_and_restocks(
    celery_worker: Worker, shop: User
) -> None:
    order = buy(shop, quantity=3)
    run = ended(order)
    assert on_hand() == STOCK - 3

    cancel_order(order_id=order.pk, by=shop, reason="changed my mind")
    assert on_hand() == STOCK  # in the cancelling transaction
    # The refund and the shipment's cancellation are tasks of their own.
    wait_for(lambda: charge(run).status == "refunded", message="the refund")  # type: ignore[union-attr]
    # The provider refunds inside the handler, before its transaction commits.
    wait_for(
        lambda: Payment.objects.get(order=order).status == PaymentStatus.REFUNDED,
        message="the payment row to say refunded",
    )
    wait_for(
        lambda: Shipment.objects.get(order_id=order.pk).status == ShipmentStatus.CANCELLED,
        message="the shipment to be cancelled",
    )
