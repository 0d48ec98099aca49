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


def test_mermaid_map_is_a_flowchart() -> None:
    mermaid = graph("--mermaid")
    assert mermaid.startswith("flowchart LR\n")
    edge = "ordering_OrderPlaced --> shipping_handlers_create_shipment"
    assert f'{edge}["shipping.handlers.create_shipment"]' in mermaid


def test_readme_embeds_the_current_map() -> None:
    from tests.support import ROOT

    readme = (ROOT / "README.md").read_text()
    for line in graph("--mermaid").splitlines():
        if "testapp" not in line:
            assert line in readme, f"README's diagram lacks: {line}"
