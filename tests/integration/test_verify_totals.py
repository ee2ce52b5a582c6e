"""`make verify-totals`: the command's recount over every tenant, its report and its repair."""

from __future__ import annotations

from uuid import uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from local.verify_totals import verify
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import new_ticket


def test_verify_reports_drift_and_repair_mends_it(
    db: DatabaseUrls, tickets_api: HandlerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a tenant with tickets, and a totals row a manual fix got wrong
    tenant = tickets_api.tenant
    new_ticket(tickets_api, category="billing")
    assert verify(db.owner, db.admin, repair=False, tenant=tenant) == 0
    with psycopg.connect(db.admin) as conn:
        conn.execute("UPDATE ticket_totals SET tickets = 7 WHERE user_id = %s", (tenant,))

    # When verified, then repaired, then verified again
    found = verify(db.owner, db.admin, repair=False, tenant=tenant)
    report = capsys.readouterr().out
    repaired = verify(db.owner, db.admin, repair=True, tenant=tenant)
    after = verify(db.owner, db.admin, repair=False, tenant=tenant)

    # Then the difference is named, mended, and gone
    assert found == 1
    assert f"{tenant}  ticket_totals open/medium/billing/api: stored (7,0,0,0,0), rows say (1,0,0,0,0)" in report
    assert (repaired, after) == (1, 0)


def test_verify_without_a_tenant_recounts_every_tenant(
    db: DatabaseUrls, tickets_api: HandlerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two tenants, each with a drifted total
    other = tickets_api.as_tenant(uuid4())
    for api in (tickets_api, other):
        new_ticket(api, category="returns")
        with psycopg.connect(db.admin) as conn:
            conn.execute("UPDATE ticket_totals SET tickets = 9 WHERE user_id = %s", (api.tenant,))

    # When verified without naming a tenant
    verify(db.owner, db.admin, repair=False)
    report = capsys.readouterr().out

    # Then both tenants' differences are reported
    for api in (tickets_api, other):
        assert f"{api.tenant}  ticket_totals open/medium/returns/api: stored (9,0,0,0,0)" in report


def test_verify_recounts_the_day_totals_too(
    db: DatabaseUrls, tickets_api: HandlerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a tenant with a ticket, and its day's total (sql/0021) set wrong by hand
    tenant = tickets_api.tenant
    new_ticket(tickets_api)
    with psycopg.connect(db.admin) as conn:
        day = conn.execute("SELECT day FROM ticket_day_totals WHERE user_id = %s", (tenant,)).fetchone()
        conn.execute("UPDATE ticket_day_totals SET tickets = 5 WHERE user_id = %s", (tenant,))
    assert day is not None

    # When verified, then repaired, then verified again
    found = verify(db.owner, db.admin, repair=False, tenant=tenant)
    report = capsys.readouterr().out
    repaired = verify(db.owner, db.admin, repair=True, tenant=tenant)
    after = verify(db.owner, db.admin, repair=False, tenant=tenant)

    # Then the day is named, mended, and true again
    assert found == 1
    assert f"{tenant}  ticket_day_totals {day[0]}: stored 5, rows say 1" in report
    assert (repaired, after) == (1, 0)
