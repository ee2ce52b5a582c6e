"""Search past the first 5,000 rows (the function's second phase), with filters and cursors, and the
isolation of the side table that makes it fast."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest

from local.database import DatabaseUrls
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import BASE

OLDER = 5_300  # more than the function's 5,000-row window


@pytest.fixture
def long_history(db: DatabaseUrls, tenant: UUID) -> UUID:
    """A tenant with OLDER tickets, oldest first; every 100th mentions 'kumquat', the very oldest 'quince',
    and every 200th is urgent."""
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute(
            """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, priority, created_at)
            SELECT %(t)s, 'Customer ' || n, 'c' || n || '@example.com',
                   CASE WHEN n = 1 THEN 'quince jam order'
                        WHEN n %% 100 = 0 THEN 'kumquat delivery ' || n
                        ELSE 'question ' || n END,
                   CASE WHEN n %% 200 = 0 THEN 'urgent' ELSE 'medium' END,
                   now() - interval '1 second' * (%(older)s - n) - interval '1 day'
            FROM generate_series(1, %(older)s) AS n""",
            {"t": tenant, "older": OLDER},
        )
    return tenant


def _all_pages(api: HandlerClient, **query: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        reply = api.get(BASE, query={**query, **({"cursor": cursor} if cursor else {})})
        assert reply.status == 200, reply.body
        found += reply.data
        cursor = reply.body["nextCursor"]
        if cursor is None:
            return found


def test_a_rare_term_is_found_beyond_the_newest_rows(tickets_api: HandlerClient, long_history: UUID) -> None:
    found = tickets_api.get(BASE, query={"search": "quince"}).data
    assert [t["subject"] for t in found] == ["quince jam order"]


def test_pages_of_a_search_span_both_phases_newest_first(tickets_api: HandlerClient, long_history: UUID) -> None:
    found = _all_pages(tickets_api, search="kumquat", limit=20)

    assert [t["subject"] for t in found] == [f"kumquat delivery {n}" for n in range(OLDER // 100 * 100, 0, -100)]


def test_search_with_filters(tickets_api: HandlerClient, long_history: UUID) -> None:
    found = _all_pages(tickets_api, search="kumquat", priority="urgent", limit=10)
    assert [t["subject"] for t in found] == [f"kumquat delivery {n}" for n in range(5200, 0, -200)]


def test_the_index_follows_edits_and_deletes(tickets_api: HandlerClient, db: DatabaseUrls) -> None:
    created = tickets_api.post(
        BASE, {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "persimmon"}
    ).data
    assert [t["id"] for t in tickets_api.get(BASE, query={"search": "persimmon"}).data] == [created["id"]]

    with psycopg.connect(db.admin) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tickets_api.tenant),))
        conn.execute("UPDATE support_tickets SET subject = 'pomegranate' WHERE id = %s", (created["id"],))
    assert tickets_api.get(BASE, query={"search": "persimmon"}).data == []
    assert [t["id"] for t in tickets_api.get(BASE, query={"search": "pomegranate"}).data] == [created["id"]]

    with psycopg.connect(db.admin) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tickets_api.tenant),))
        conn.execute("DELETE FROM support_tickets WHERE id = %s", (created["id"],))
        left = conn.execute("SELECT count(*) FROM ticket_search_index WHERE ticket_id = %s", (created["id"],))
        assert left.fetchone() == (0,)


def test_runtime_role_cannot_read_the_search_index(db: DatabaseUrls, tenant: UUID) -> None:
    with psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM ticket_search_index")


def test_the_search_function_fails_closed_and_keeps_to_the_tenant(
    db: DatabaseUrls, tickets_api: HandlerClient, other_tenant: UUID
) -> None:
    tickets_api.post(BASE, {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "tangerine"})
    with psycopg.connect(db.app) as conn:
        with pytest.raises(psycopg.errors.UndefinedObject):
            conn.execute("SELECT * FROM search_ticket_ids('tangerine', 10)")
        conn.rollback()
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(other_tenant),))
        assert conn.execute("SELECT * FROM search_ticket_ids('tangerine', 10)").fetchall() == []
        conn.rollback()
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tickets_api.tenant),))
        assert len(conn.execute("SELECT * FROM search_ticket_ids('tangerine', 10)").fetchall()) == 1
