"""Declaring and starting sagas, and the rules a step's input and output
follow. (The checkout saga runs in real workers in tests/ordering.)"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pydantic
import pytest
from django.db import transaction

from mediator import Command, Saga, Step, start_saga
from mediator.exceptions import (
    ImproperEvent,
    InvalidPayload,
    PublishOutsideTransaction,
    SagaError,
    StepOutputError,
)
from mediator.handlers.registry import get_handler
from mediator.models import OutboxMessage, RunState, SagaRun, SagaStep, StepState
from mediator.sagas.definition import ACTION, COMPENSATION, step_of_task
from mediator.sagas.runner import build_command, step_output
from ordering.commands import ChargePayment, RefundPayment, ReleaseStock, ReserveStock
from ordering.events import OrderPlaced
from ordering.sagas import Checkout

DATA = {
    "order_id": 7,
    "customer_email": "a@example.com",
    "total": "12.50",
    "payment_token": "tok_visa",
    "ship_to": "GB",
}


def test_each_step_and_compensation_is_a_task_with_the_steps_own_policy() -> None:
    charge = get_handler("saga.ordering.Checkout.charge_payment")
    assert charge is not None
    assert (charge.max_retries, charge.backoff, charge.soft_time_limit, charge.time_limit) == (
        4, 1.0, 10, 20,
    )  # fmt: skip
    assert charge.atomic is False  # the runner opens its own transaction
    assert charge.task is not None  # built from the registry in ready()
    assert charge.task.acks_late
    assert charge.task.reject_on_worker_lost
    assert get_handler("saga.ordering.Checkout.charge_payment.compensate") is not None
    # A step with nothing to undo has no compensation task.
    assert get_handler("saga.ordering.Checkout.send_order_confirmation.compensate") is None
    assert step_of_task("saga.ordering.Checkout.book_shipment.compensate") == (
        Checkout, 2, COMPENSATION,
    )  # fmt: skip
    assert Checkout.task_name(0, ACTION) == "saga.ordering.Checkout.reserve_stock"


@pytest.fixture
def poke(isolated_registry: None) -> type[Command]:
    """A command class that exists only for one test."""

    class Poke(Command):
        event_type = "tests.Poke"
        order_id: int

    return Poke


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (lambda poke: [], "declares no steps"),
        (lambda poke: ["reserve"], "holds 'reserve'; list Step(...) objects"),
        (lambda poke: [Step(poke), Step(poke)], "has two steps named alike: ['poke', 'poke']"),
        (lambda poke: [Step(OrderPlaced)], "sends a Command; OrderPlaced is not one"),  # type: ignore[arg-type]
        (
            lambda poke: [Step(poke, name="Poke-It")],
            "Step name 'Poke-It' of Bad must be snake_case",
        ),
    ],
)
def test_a_wrong_declaration_is_refused_where_it_is_written(
    poke: type[Command], steps: Callable[[type[Command]], list[Any]], message: str
) -> None:
    with pytest.raises(SagaError, match=re.escape(message)):
        type("Bad", (Saga,), {"steps": steps(poke), "__module__": "tests.mediator.test_sagas"})


def test_two_sagas_cannot_share_a_name(poke: type[Command]) -> None:
    with pytest.raises(SagaError, match=r"Two sagas are named 'ordering\.Checkout'"):
        type("Other", (Saga,), {"name": "ordering.Checkout", "steps": [Step(poke)]})


@pytest.mark.django_db(transaction=True)
def test_start_saga_needs_a_transaction_and_json_data() -> None:
    with pytest.raises(PublishOutsideTransaction, match=r"start_saga\(Checkout\) was called"):
        start_saga(Checkout, DATA)
    with transaction.atomic():
        with pytest.raises(ImproperEvent, match="must be a dict of JSON values"):
            start_saga(Checkout, {**DATA, "total": Decimal("12.50")})
        with pytest.raises(SagaError, match="takes a Saga subclass"):
            start_saga(dict, DATA)  # type: ignore[arg-type]
    assert not SagaRun.objects.exists()


@pytest.mark.django_db
def test_a_rolled_back_start_leaves_nothing_a_committed_one_leaves_the_run_and_first_step() -> None:
    def start_then_fail() -> None:
        with transaction.atomic():
            start_saga(Checkout, DATA)
            raise RuntimeError("the order could not be saved")

    with pytest.raises(RuntimeError):
        start_then_fail()
    assert not SagaRun.objects.exists()
    assert not OutboxMessage.objects.exists()

    with transaction.atomic():
        run_id = start_saga(Checkout, DATA)
    run = SagaRun.objects.get(pk=run_id)
    assert (run.saga, run.state, run.current_step, run.data) == (
        "ordering.Checkout", RunState.RUNNING, 0, DATA,
    )  # fmt: skip
    assert list(run.steps.values_list("name", "state", "action", "compensation")) == [
        ("reserve_stock", "pending", "ordering.ReserveStock", "ordering.ReleaseStock"),
        ("charge_payment", "pending", "ordering.ChargePayment", "ordering.RefundPayment"),
        ("book_shipment", "pending", "shipping.BookShipment", "shipping.CancelShipmentBooking"),
        ("send_order_confirmation", "pending", "notifications.SendOrderConfirmation", ""),
    ]
    [row] = OutboxMessage.objects.all()
    assert row.event_type == "saga.ordering.Checkout.reserve_stock"
    assert row.payload == {"run_id": str(run_id), "step": 0}
    assert row.correlation_id == str(run_id)  # no request: the run is the correlation


@pytest.mark.django_db
def test_a_command_is_filled_from_the_data_the_run_id_and_earlier_outputs() -> None:
    with transaction.atomic():
        run = SagaRun.objects.get(pk=start_saga(Checkout, DATA))
    SagaStep.objects.filter(run=run, index=1).update(
        state=StepState.DONE, output={"charge_id": "ch_1", "order_id": 8}
    )
    assert build_command(ReserveStock, run, upto=-1) == ReserveStock(order_id=7)
    assert build_command(ChargePayment, run, upto=0) == ChargePayment(
        order_id=7, saga_run_id=str(run.pk), payment_token="tok_visa"
    )
    # A compensation sees its own step's output; a later output wins a name.
    assert build_command(RefundPayment, run, upto=1) == RefundPayment(
        order_id=8, saga_run_id=str(run.pk)
    )
    assert build_command("ordering.ReleaseStock", run, upto=-1) == ReleaseStock(order_id=7)
    SagaRun.objects.filter(pk=run.pk).update(data={"total": "1"})
    run.refresh_from_db()
    with pytest.raises(pydantic.ValidationError, match="order_id"):
        build_command(ReserveStock, run, upto=-1)


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (object(), "returned object; a saga step's handler returns None or a small dict"),
        ({"when": Decimal("1")}, "returned a dict that is not JSON"),
        ({"blob": "x" * 5000}, "returned 5012 bytes; the limit is 4096"),
    ],
)
def test_a_step_hands_on_a_small_json_dict_or_nothing(result: Any, error: str) -> None:
    assert step_output(None, Checkout, 0) == {}
    assert step_output({"charge_id": "ch_1"}, Checkout, 1) == {"charge_id": "ch_1"}
    with pytest.raises(StepOutputError, match=error):
        step_output(result, Checkout, 1)


def test_a_step_message_for_another_step_is_refused() -> None:
    spec = get_handler("saga.ordering.Checkout.book_shipment")
    assert spec is not None
    message = Checkout.message_type(2, ACTION)(run_id=uuid.uuid4(), step=1)
    with pytest.raises(InvalidPayload, match="got a message for step 1, not 2"):
        spec.func(message)
