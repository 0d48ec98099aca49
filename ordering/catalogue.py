"""What the demo shop sells: the seed data and the "place a demo order" form."""

from decimal import Decimal

from ordering.services import LineItem

DEMO_CATALOGUE = {
    item.sku: item
    for item in [
        LineItem(sku="MUG-01", name="Enamel mug", quantity=1, unit_price=Decimal("12.50")),
        LineItem(sku="TEA-07", name="Green tea, 100 g", quantity=1, unit_price=Decimal("8.90")),
        LineItem(sku="PEN-03", name="Fountain pen", quantity=1, unit_price=Decimal("34.00")),
    ]
}
