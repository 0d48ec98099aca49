"""Writes a crash may lose skip the WAL flush on PostgreSQL; nothing else does."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from mediator.outbox_sql import without_flush_wait

pytestmark = pytest.mark.django_db(transaction=True)


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            return "on"  # SQLite has no such setting: its commits are unchanged
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def test_only_the_wrapped_write_skips_the_flush_wait() -> None:
    with without_flush_wait():
        inside = synchronous_commit()
    assert inside == ("off" if connection.vendor == "postgresql" else "on")
    assert synchronous_commit() == "on"  # SET LOCAL ended with its transaction


def test_a_callers_transaction_keeps_its_durability() -> None:
    with transaction.atomic():
        with without_flush_wait():
            assert synchronous_commit() == "on"
        assert synchronous_commit() == "on"
