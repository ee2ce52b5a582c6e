"""The dashboard's figures come from several statements; they must agree with each other while tickets are
being created: one REPEATABLE READ READ ONLY snapshot."""

from __future__ import annotations

import threading
from uuid import UUID

import psycopg
import pytest

from local.database import DatabaseUrls
from support.db.connection import SET_TENANT
from tests.http_events import HandlerClient

DASHBOARD = "/api/support/dashboard"


def _keep_creating_tickets(db: DatabaseUrls, tenant: UUID, stop: threading.Event) -> None:
    with psycopg.connect(db.app) as conn:
        while not stop.is_set():
            conn.execute(SET_TENANT, (str(tenant),))
            conn.execute(
                "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)"
                " VALUES (%s, 'A', 'a@example.com', 'while the dashboard reads')",
                (tenant,),
            )
            conn.commit()


def test_figures_read_by_different_statements_agree_under_concurrent_writes(db: DatabaseUrls, tenant: UUID) -> None:
    from functions.dashboard import app

    api = HandlerClient(app.lambda_handler, tenant=tenant)
    stop = threading.Event()
    writer = threading.Thread(target=_keep_creating_tickets, args=(db, tenant, stop))
    writer.start()
    disagreements = []
    try:
        for _ in range(40):
            data = api.get(DASHBOARD).data
            # every ticket was created today: the totals (one statement), today's count (another) and the
            # week's trend (a third) must all say the same number
            figures = (
                data["totalTickets"],
                data["ticketsCreatedToday"],
                data["ticketVolumeTrendLastWeek"][-1]["count"],
            )
            if len(set(figures)) != 1:
                disagreements.append(figures)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert disagreements == []


def test_a_snapshot_read_is_repeatable_read_and_takes_no_write(db: DatabaseUrls, tenant: UUID) -> None:
    from support.db import read_snapshot, tenant_transaction
    from support.db.connection import Cursor

    def settings(cur: Cursor) -> object:
        cur.execute(
            "SELECT current_setting('transaction_isolation') AS isolation,"
            " current_setting('app.tenant_id') AS tenant, current_setting('statement_timeout') AS timeout"
        )
        return cur.fetchone()

    assert read_snapshot(tenant, settings) == {"isolation": "repeatable read", "tenant": str(tenant), "timeout": "5s"}

    def write(cur: Cursor) -> None:
        cur.execute(
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)"
            " VALUES (%s, 'A', 'a@example.com', 's')",
            (tenant,),
        )
        cur.fetchall()

    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        read_snapshot(tenant, write)
    with tenant_transaction(tenant) as cur:  # and the next ordinary transaction is read-write again
        cur.execute("SHOW transaction_read_only")
        assert cur.fetchone() == {"transaction_read_only": "off"}
        cur.execute("SELECT count(*) AS n FROM support_tickets WHERE user_id = %s", (tenant,))
        assert cur.fetchone() == {"n": 0}
