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


def test_a_snapshot_transaction_is_repeatable_read_and_takes_no_write(db: DatabaseUrls, tenant: UUID) -> None:
    from support.db import tenant_transaction

    with tenant_transaction(tenant, snapshot=True) as cur:
        cur.execute("SHOW transaction_isolation")
        assert cur.fetchone() == {"transaction_isolation": "repeatable read"}
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), tenant_transaction(tenant, snapshot=True) as cur:
        cur.execute(
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)"
            " VALUES (%s, 'A', 'a@example.com', 's')",
            (tenant,),
        )
    with tenant_transaction(tenant) as cur:  # and the next ordinary transaction is read-write again
        cur.execute("SHOW transaction_read_only")
        assert cur.fetchone() == {"transaction_read_only": "off"}
