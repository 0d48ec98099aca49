from io import StringIO

from django.core.management import call_command


def graph(*args: str) -> str:
    out = StringIO()
    call_command("mediator_graph", *args, stdout=out)
    return out.getvalue()


def test_text_map_lists_each_event_with_its_handlers() -> None:
    text = graph()
    assert (
        "ordering.OrderCancelled\n"
        "  -> shipping.handlers.cancel_shipment\n"
        "  -> notifications.handlers.send_cancellation_notice\n"
    ) in text
    assert "testapp.Parked\n  -> tests.testapp.handlers.parked" in text


def test_a_saga_is_drawn_as_its_steps_and_what_each_sends_and_undoes() -> None:
    assert (
        "saga ordering.Checkout\n"
        "  1. reserve_stock: ordering.ReserveStock (undo: ordering.ReleaseStock)\n"
        "  2. charge_payment: ordering.ChargePayment (undo: ordering.RefundPayment)\n"
        "  3. book_shipment: shipping.BookShipment (undo: shipping.CancelShipmentBooking)\n"
        "  4. send_order_confirmation: notifications.SendOrderConfirmation"
    ) in graph()
    mermaid = graph("--mermaid")
    assert "saga.ordering.Checkout.reserve_stock" not in mermaid  # its plumbing is not drawn
    assert (
        "saga_ordering_Checkout_reserve_stock --> saga_ordering_Checkout_charge_payment" in mermaid
    )
    assert "saga_ordering_Checkout_charge_payment -. undo .-> ordering_RefundPayment" in mermaid


def test_mermaid_map_is_a_flowchart() -> None:
    mermaid = graph("--mermaid")
    assert mermaid.startswith("flowchart LR\n")
    edge = "ordering_OrderPlaced --> shipping_handlers_create_shipment"
    assert f'{edge}["shipping.handlers.create_shipment"]' in mermaid


def test_the_publishing_page_embeds_the_current_map() -> None:
    from tests.support import ROOT

    page = (ROOT / "docs" / "publishing.md").read_text()
    for line in graph("--mermaid").splitlines():
        if "testapp" not in line:
            assert line in page, f"docs/publishing.md's diagram lacks: {line}"
