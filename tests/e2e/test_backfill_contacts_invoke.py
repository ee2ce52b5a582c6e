"""`make backfill-contacts` as a developer's shell runs it: a real `make` subprocess against a data folder of the
test's own, whose PostgreSQL this test holds open so that the target joins it, as it joins a running `make run`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.db.connection import SET_TENANT
from tests.e2e.local_run import held_run_database, make


@pytest.fixture(scope="module")
def run_db() -> Iterator[tuple[Path, DatabaseUrls]]:
    yield from held_run_database("backfill-contacts")


def test_make_backfill_contacts_links_old_rows_with_a_progress_bar(run_db: tuple[Path, DatabaseUrls]) -> None:
    folder, urls = run_db
    tenant = uuid4()
    # Given tickets and chats from before contacts (contact_id NULL), of three customers
    with psycopg.connect(urls.owner) as conn:
        conn.execute(SET_TENANT, (str(tenant),))
        for n in range(12):
            conn.execute(
                "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)"
                " VALUES (%s, 'C', %s, 'x')",
                (tenant, f"c{n % 3}@example.com"),
            )
        conn.execute("INSERT INTO live_chat_sessions (user_id, visitor_id) VALUES (%s, 'v-1')", (tenant,))

    # When the target runs with small batches
    run = make(folder, "backfill-contacts", f"TENANT={tenant}", "BATCH=5")

    # Then it links them all, in batches, and says so
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result == {
        "ok": True,
        "done": True,
        "tenants": 1,
        "tickets": 12,
        "sessions": 1,
        "batches": 4,
        "failed": [],
    }
    assert "backfill-contacts:" in run.stderr and "13row" in run.stderr.replace(" ", "")
    with psycopg.connect(urls.admin) as conn:
        linked = conn.execute(
            "SELECT count(DISTINCT contact_id), count(*) FILTER (WHERE contact_id IS NULL) FROM support_tickets"
            " WHERE user_id = %s",
            (tenant,),
        ).fetchone()
    assert linked == (3, 0)

    # and a second run finds nothing left
    again = make(folder, "backfill-contacts", f"TENANT={tenant}")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tickets"] == 0
