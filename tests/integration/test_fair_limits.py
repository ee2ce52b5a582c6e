"""Fair limits (issue 20): every request of a signed-in caller counts against its tenant's API budget, a token
bucket in PostgreSQL (support.services.rate_limits: the deployment's default, or the tenant's own `limits` row),
checked by a transaction that rides in front of the request's first transaction (support.db.connection.Admission).

Real handlers in process, the real database; the concurrency test gives every thread its own connection, as every
Lambda execution environment has its own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.config import get_settings
from support.db import connection
from support.models.settings import LimitsSettings
from support.services import rate_limits
from tests.http_events import HandlerClient, Reply
from tests.integration.test_chat_concurrency import connection_per_thread, run_together

__all__ = ["connection_per_thread"]  # the fixture, used by name below

TICKET = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Where is my parcel?"}


def limit(db: DatabaseUrls, tenant: UUID, burst: int, per_second: float) -> None:
    """The operator's change (the owner's connection, as an operator's psql would be)."""
    with psycopg.connect(db.owner, row_factory=psycopg.rows.dict_row) as conn, conn.cursor() as cur:
        cur.execute(connection.SET_TENANT, (str(tenant),))
        rate_limits.set_api_limits(cur, tenant, LimitsSettings(api_burst=burst, api_per_second=per_second))


def bucket(db: DatabaseUrls, tenant: UUID) -> dict[str, Any] | None:
    with psycopg.connect(db.owner) as conn:
        conn.execute(connection.SET_TENANT, (str(tenant),))
        row = conn.execute(
            "SELECT tokens, admitted FROM rate_limit_counters WHERE user_id = %s AND scope = 'api'", (tenant,)
        ).fetchone()
    return {"tokens": row[0], "admitted": row[1]} if row else None


def ticket_count(db: DatabaseUrls, tenant: UUID) -> int:
    with psycopg.connect(db.owner) as conn:
        conn.execute(connection.SET_TENANT, (str(tenant),))
        row = conn.execute("SELECT count(*) FROM support_tickets WHERE user_id = %s", (tenant,)).fetchone()
    return int(row[0]) if row else 0


def refused(reply: Reply) -> int:
    """The Retry-After of a 429 with the error envelope."""
    assert reply.status == 429, reply
    assert reply.error["code"] == "rate_limited"
    seconds = int(reply.headers["Retry-After"])
    assert seconds >= 1
    return seconds


def test_a_burst_over_the_budget_gets_429_with_retry_after_and_nothing_is_done(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID
) -> None:
    limit(db, tenant, burst=5, per_second=0.01)

    replies = [tickets_api.post("/api/support/tickets", dict(TICKET, subject=f"order {n}")) for n in range(8)]

    assert [reply.status for reply in replies] == [201] * 5 + [429] * 3
    assert all(refused(reply) >= 99 for reply in replies[5:])  # one token in 1 / 0.01 s
    assert ticket_count(db, tenant) == 5  # the refused creates did nothing
    assert refused(tickets_api.get("/api/support/tickets")) >= 1  # reads count too, every route
    assert bucket(db, tenant) == {"tokens": pytest.approx(0, abs=0.01), "admitted": True}


def test_another_tenant_is_not_affected(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    limit(db, tenant, burst=3, per_second=0.01)
    for _ in range(3):
        assert tickets_api.get("/api/support/tickets").status == 200
    assert tickets_api.get("/api/support/tickets").status == 429

    other = tickets_api.as_tenant(uuid4())
    assert [other.post("/api/support/tickets", TICKET).status for _ in range(10)] == [201] * 10
    assert other.get("/api/support/tickets").status == 200


def test_the_default_budget_applies_without_a_row(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    assert tickets_api.get("/api/support/tickets").status == 200
    level = bucket(db, tenant)
    assert level is not None
    assert level["tokens"] == pytest.approx(rate_limits.api_per_tenant().burst - 1, abs=0.5)


@pytest.fixture
def deployment_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The deployment's default budget, as the function's environment sets it: 2 at once, barely refilled."""
    monkeypatch.setenv("TENANT_API_BURST", "2")
    monkeypatch.setenv("TENANT_API_PER_SECOND", "0.01")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_deployment_sets_the_default_and_a_tenant_row_overrides_it(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID, deployment_default: None
) -> None:
    assert [tickets_api.get("/api/support/tickets").status for _ in range(3)] == [200, 200, 429]
    other = uuid4()
    limit(db, other, burst=4, per_second=0.01)
    assert [tickets_api.as_tenant(other).get("/api/support/tickets").status for _ in range(5)] == [200] * 4 + [429]


def test_the_budget_refills_at_its_rate(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    limit(db, tenant, burst=2, per_second=20)
    statuses = [tickets_api.get("/api/support/tickets").status for _ in range(3)]
    assert statuses[:2] == [200, 200]
    assert statuses[2] in (200, 429)
    import time

    time.sleep(0.2)  # 4 tokens' worth, the bucket holds 2
    assert [tickets_api.get("/api/support/tickets").status for _ in range(2)] == [200, 200]


def test_requests_refused_before_any_database_work_count_too(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID
) -> None:
    """A 422, a 403 and a body no route reads open no transaction: the check goes alone after them, and once the
    budget is spent they are answered 429 as well."""
    limit(db, tenant, burst=3, per_second=0.01)
    assert tickets_api.post("/api/support/tickets", {"subject": ""}).status == 422
    assert tickets_api.get("/api/support/tickets", query={"userId": str(uuid4())}).status == 403
    assert tickets_api.request("POST", "/api/support/tickets", raw_body="x", content_type="text/plain").status == 415
    refused(tickets_api.post("/api/support/tickets", {"subject": ""}))
    refused(tickets_api.post("/api/support/tickets", TICKET))
    assert ticket_count(db, tenant) == 0


def test_a_request_whose_work_fails_still_counts(db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID) -> None:
    """The check's transaction commits before the work's begins: a 404 counts as a 200 does."""
    limit(db, tenant, burst=2, per_second=0.01)
    assert tickets_api.get(f"/api/support/tickets/{uuid4()}").status == 404
    assert tickets_api.patch(f"/api/support/tickets/{uuid4()}", {"priority": "high"}).status == 404
    refused(tickets_api.get("/api/support/tickets"))


def test_every_function_counts_against_the_same_budget(
    db: DatabaseUrls, tickets_api: HandlerClient, agents_api: HandlerClient, tenant: UUID
) -> None:
    from functions.dashboard import app as dashboard
    from functions.settings import app as settings

    limit(db, tenant, burst=3, per_second=0.01)
    assert tickets_api.get("/api/support/tickets").status == 200
    assert agents_api.get("/api/support/agents").status == 200
    assert HandlerClient(dashboard.lambda_handler, tenant=tenant).get("/api/support/dashboard").status == 200
    refused(HandlerClient(settings.lambda_handler, tenant=tenant).get("/api/support/settings/chat"))
    refused(agents_api.get("/api/support/agents"))


def test_concurrent_environments_never_admit_more_than_the_budget(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID, connection_per_thread: None
) -> None:
    """8 threads, each with its own connection (an execution environment each), send 6 requests each at once
    against a budget of 20 that barely refills: exactly 20 are admitted, and only they did anything."""
    limit(db, tenant, burst=20, per_second=0.01)

    def send() -> list[int]:
        return [tickets_api.post("/api/support/tickets", TICKET).status for _ in range(6)]

    results = run_together([send] * 8)

    statuses = [status for per_thread in results for status in per_thread]
    assert statuses.count(201) == 20
    assert statuses.count(429) == 28
    assert ticket_count(db, tenant) == 20


def test_the_public_routes_keep_their_own_buckets(db: DatabaseUrls, tenant: UUID) -> None:
    """A tenant whose API budget is spent still greets its visitors: the widget session route is limited per
    address and per key (support.services.rate_limits), never by the staff's budget."""
    from functions.widgets import app as widgets_app

    admin = HandlerClient(widgets_app.lambda_handler, tenant=tenant)
    key = admin.post("/api/support/widgets", {"name": "Shop", "allowedOrigins": ["https://shop.example"]}).data
    limit(db, tenant, burst=1, per_second=0.01)  # a lower budget applies at once: the bucket holds at most 1
    assert admin.get("/api/support/widgets").status == 200
    refused(admin.get("/api/support/widgets"))

    def session(source_ip: str) -> Reply:
        return admin.request(
            "POST",
            "/api/support/widget/session",
            json_body={"widgetKey": key["widgetKey"]},
            claims={},
            headers={"origin": "https://shop.example"},
            source_ip=source_ip,
        )

    burst = rate_limits.SESSION_PER_IP.burst
    assert [session("203.0.113.7").status for _ in range(burst)] == [201] * burst
    refused(session("203.0.113.7"))  # that address is over its own bucket
    assert session("203.0.113.8").status == 201  # another address is not


def test_the_check_goes_in_the_first_transactions_round_trip(db: DatabaseUrls, tenant: UUID) -> None:
    """No round trip of its own: the check's transaction is sent in the same pipeline as the work's first one, so
    a read answers as many results back with it as without it (the server runs both), and the check is done."""
    check = rate_limits.api_admission(tenant)
    with connection.admission(check):
        rows = connection.pipelined(tenant, [("SELECT 1 AS one", None)], snapshot=True)
    assert rows == [[{"one": 1}]]
    assert check.done
    assert bucket(db, tenant) is not None


def test_a_refusal_logs_nothing_per_request(
    db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood's refused requests are not a log line each: psycopg's note that the pipeline's rest was aborted by the
    refusal is dropped (the refusal itself is the 429)."""
    limit(db, tenant, burst=1, per_second=0.01)
    assert tickets_api.get("/api/support/tickets").status == 200
    with caplog.at_level(logging.WARNING):
        refused(tickets_api.get("/api/support/tickets"))
        refused(tickets_api.post("/api/support/tickets", TICKET))
        refused(tickets_api.get(f"/api/support/tickets/{uuid4()}"))  # a read that fetches inside its pipeline
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_a_refusal_is_the_databases_answer_not_an_error(db: DatabaseUrls, tenant: UUID) -> None:
    """api_admit_answer answers the whole seconds to wait (NULL when admitted): a refused check raises nothing in the
    database, so a flood's refusals are not an ERROR each in the server's log."""
    limit(db, tenant, burst=1, per_second=0.01)
    with psycopg.connect(db.app, autocommit=True) as conn:
        check = "SELECT api_admit_answer(%s, 300, 50)"
        assert conn.execute(check, (tenant,)).fetchone() == (None,)
        answer = conn.execute(check, (tenant,)).fetchone()
    assert answer is not None and answer[0] >= 99
    assert bucket(db, tenant) == {"tokens": pytest.approx(0, abs=0.01), "admitted": True}  # the refusal wrote nothing


def test_api_admit_still_refuses_by_raising_as_the_last_release_calls_it(db: DatabaseUrls, tenant: UUID) -> None:
    """The previous release's code calls api_admit and takes no error as admitted: during a deploy's window or after
    a rollback it must still be refused, so api_admit keeps raising APR29 (the answering form is api_admit_answer)."""
    limit(db, tenant, burst=1, per_second=0.01)
    with psycopg.connect(db.app, autocommit=True) as conn:
        check = "SELECT api_admit(%s, 300, 50)"
        conn.execute(check, (tenant,))
        with pytest.raises(psycopg.Error) as refused_check:
            conn.execute(check, (tenant,))
    assert refused_check.value.sqlstate == "APR29" and int(refused_check.value.diag.message_detail or 0) >= 99
