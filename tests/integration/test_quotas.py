"""The product's count caps on tickets and categories answer 409 quota_exceeded, from the running totals."""

from __future__ import annotations

import threading
from uuid import UUID

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.errors import QuotaExceeded
from support.models.tickets import TicketCreate
from support.services import tickets
from tests.http_events import HandlerClient
from tests.integration.test_canned_responses_api import own_connection, run_concurrently
from tests.integration.test_tickets_api import BASE, new_ticket


def _pretend_tenant_has(db: DatabaseUrls, tenant: UUID, count: int) -> None:
    """A tenant with `count` tickets as far as the running totals know, without writing a million rows: a
    totals row for a group no real ticket uses, written as the owner (the runtime role cannot write totals)."""
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute(
            "INSERT INTO ticket_totals (user_id, status, priority, category, tickets)"
            " VALUES (%s, 'closed', 'low', 'imported-history', %s)",
            (tenant, count),
        )


def _stored_tickets(db: DatabaseUrls, tenant: UUID) -> int:
    with psycopg.connect(db.admin) as conn:
        row = conn.execute("SELECT count(*) FROM support_tickets WHERE user_id = %s", (tenant,)).fetchone()
    assert row is not None
    return int(row[0])


def test_the_millionth_ticket_is_taken_and_the_next_refused(tickets_api: HandlerClient, db: DatabaseUrls) -> None:
    # Given a tenant one ticket short of the cap
    _pretend_tenant_has(db, tickets_api.tenant, tickets.MAX_TICKETS_PER_TENANT - 1)

    # When it creates the 1,000,000th and the 1,000,001st
    last = tickets_api.post(BASE, {"customerName": "A", "customerEmail": "a@example.com", "subject": "last one"})
    over = tickets_api.post(BASE, {"customerName": "A", "customerEmail": "a@example.com", "subject": "one more"})

    # Then the first is created, the second is a 409 quota_exceeded that says why, and nothing was stored for it
    assert last.status == 201, last.body
    assert over.status == 409
    assert over.error["code"] == "quota_exceeded"
    assert "1,000,000 tickets" in over.error["message"]
    assert _stored_tickets(db, tickets_api.tenant) == 1


def test_concurrent_creates_at_the_cap_cannot_overshoot_it(
    db: DatabaseUrls, tenant: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tenant 3 short of the cap, and 8 creates racing from 8 execution environments
    _pretend_tenant_has(db, tenant, tickets.MAX_TICKETS_PER_TENANT - 3)
    ready = threading.Barrier(8)
    monkeypatch.setattr(tickets, "tenant_transaction", lambda t: own_connection(db, t, ready))
    principal = Principal(tenant_id=tenant, role=Role.AGENT, subject="racer")
    data = TicketCreate(customer_name="A", customer_email="a@example.com", subject="race")

    # When they all create at once
    results = run_concurrently(8, lambda: tickets.create_ticket(principal, data))

    # Then exactly 3 got in, and the others were told the cap is reached
    assert sum(not isinstance(r, Exception) for r in results) == 3
    assert all(isinstance(r, QuotaExceeded) for r in results if isinstance(r, Exception))
    assert _stored_tickets(db, tenant) == 3


def test_a_new_category_over_the_cap_is_refused_and_used_ones_stay_open(
    tickets_api: HandlerClient, db: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tenant using as many categories as it may (a cap of 3 for the test)
    monkeypatch.setattr(tickets, "MAX_CATEGORIES_PER_TENANT", 3)
    first = new_ticket(tickets_api, category="billing")
    new_ticket(tickets_api, category="shipping")
    new_ticket(tickets_api, category="returns")

    # When it creates a ticket in a fourth, moves one to a fourth, and uses one of the three again
    created = tickets_api.post(
        BASE, {"customerName": "A", "customerEmail": "a@example.com", "subject": "s", "category": "warranty"}
    )
    moved = tickets_api.patch(f"{BASE}/{first['id']}", {"category": "warranty"})
    reused = tickets_api.post(
        BASE, {"customerName": "A", "customerEmail": "a@example.com", "subject": "s", "category": "shipping"}
    )

    # Then the fourth is refused both ways, and a category in use is still fine
    assert (created.status, created.error["code"]) == (409, "quota_exceeded")
    assert created.error["details"][0]["field"] == "body.category"
    assert (moved.status, moved.error["code"]) == (409, "quota_exceeded")
    assert reused.status == 201
    # and once a category empties (its last ticket moves away), it no longer counts
    assert tickets_api.patch(f"{BASE}/{first['id']}", {"category": "shipping"}).status == 200
    assert tickets_api.patch(f"{BASE}/{first['id']}", {"category": "warranty"}).status == 200
