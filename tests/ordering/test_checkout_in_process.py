"""The checkout saga delivered in this process (mediator.testing): each step
through its handler's real delivery path, no broker or worker. The same saga
in real workers, with crashes and faults, is tests/ordering/test_checkout_saga.py."""

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User

from mediator.models import RunState, SagaRun
from mediator.testing import Outbox, Outcome
from notifications.events import EmailQueued
from notifications.models import SentEmail
from ordering import payment_provider
from ordering.models import OrderStatus, StockItem
from ordering.services import check_out_demo
from shipping.models import Shipment
from tests.testapp.handlers import store


@pytest.fixture
def customer(db: None) -> Iterator[User]:
    StockItem.objects.create(sku="MUG-01", on_hand=5)
    store().delete(payment_provider.LEDGER)  # order ids repeat from test to test
    yield User.objects.create_user("carol", "carol@example.com", "pw")
    store().delete(payment_provider.LEDGER)


def test_a_checkout_runs_every_step_once_and_completes(
    mediator_outbox: Outbox, customer: User
) -> None:
    order = check_out_demo(
        owner=customer, sku="MUG-01", quantity=2, payment_token="tok_visa", ship_to="GB"
    )
    # Nothing but the saga's first step yet, sent after commit.
    assert [m.event_type for m in mediator_outbox] == ["saga.ordering.Checkout.reserve_stock"]

    run = mediator_outbox.deliver(cascade=True)
    run.assert_all(Outcome.DONE)
    assert order.checkout_run_id is not None
    saga = SagaRun.objects.get(pk=order.checkout_run_id)
    assert saga.state == RunState.COMPLETED
    order.refresh_from_db()
    assert order.status == OrderStatus.PLACED
    assert StockItem.objects.get(sku="MUG-01").on_hand == 3
    assert Shipment.objects.filter(order_id=order.pk).count() == 1
    email = SentEmail.objects.get(recipient="carol@example.com")
    assert mediator_outbox.one(EmailQueued) == EmailQueued(email_id=email.pk)
    assert email.sent_at is not None
    # Delivered again, every step is a skipped duplicate: nothing is charged twice.
    again = mediator_outbox.deliver()
    again.assert_all(Outcome.DUPLICATE)
