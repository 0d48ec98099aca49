"""Every query the order page's poll and the operators' dashboard make finds
its rows through an index: none reads a mediator table from end to end.

The database is asked for each query's plan. PostgreSQL is told to avoid
sequential scans, so it still plans one (or reads a whole index) only where
no index can serve; reading a whole partial index (the pending rows, the
retrying deliveries) is bounded by the work in flight, and allowed. PostgreSQL
is the production database and gets the strict check; SQLite's is weaker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ordering.services import LineItem, place_order

ITEM = LineItem(sku="MUG-01", name="Mug", quantity=1, unit_price=Decimal("12.50"))
MEDIATOR_TABLE = re.compile(r"mediator_\w+")


def partial_indexes() -> set[str]:
    """Indexes holding only the rows a query asks for (pending, retrying, …):
    reading one whole is bounded by what is in flight, not by history."""
    return {
        index.name
        for model in apps.get_app_config("mediator").get_models()
        for index in model._meta.indexes
        if index.condition is not None
    }


def full_scans(sql: str) -> list[str]:
    """The parts of the query's plan that read a mediator table, or one of its
    indexes, whole."""
    partial = partial_indexes()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
            [[plan]] = cursor.fetchone()
            return [
                f"{node['Node Type']} on {node['Relation Name']} {node.get('Index Name', '')}"
                for node in _nodes(plan["Plan"])
                if node.get("Relation Name", "").startswith("mediator_")
                and "Index Cond" not in node
                and node.get("Index Name") not in partial
                and node["Node Type"] != "Bitmap Heap Scan"  # its Bitmap Index Scan decides
            ]
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        lines = [row[-1] for row in cursor.fetchall()]
        # SQLite: "SEARCH t USING INDEX i (x=?)" looks rows up; "SCAN t" reads
        # them all. Without statistics its planner may read a whole index to
        # skip a sort (GROUP BY), so here only reading a table whole counts.
        return [
            line for line in lines
            if line.startswith("SCAN ") and MEDIATOR_TABLE.search(line) and "INDEX" not in line
        ]  # fmt: skip


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def scans_of_page(client: Client, url: str) -> dict[str, list[str]]:
    """Each mediator query the page made (as logged, parameters inlined) with
    its full scans, if it has any."""
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    reads = [
        q["sql"] for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith("SELECT") and MEDIATOR_TABLE.search(q["sql"])
    ]  # fmt: skip
    assert reads, "the page read no mediator table"
    return {sql: scans for sql in reads if (scans := full_scans(sql))}


@pytest.mark.django_db
def test_the_order_poll_and_the_dashboard_read_mediator_tables_through_indexes(
    client: Client, alice: User
) -> None:
    order = place_order(owner=alice, items=[ITEM])
    client.force_login(alice)
    assert scans_of_page(client, reverse("orders:order-live", args=[order.pk])) == {}

    operator = User.objects.create_superuser("op", "op@example.com", "pw")
    client.force_login(operator)
    assert scans_of_page(client, reverse("mediator-dashboard")) == {}
