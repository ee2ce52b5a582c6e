"""Fair limits over real HTTP through the local gateway: a tenant's burst over its API budget gets 429 with the
error envelope and `Retry-After`, as API Gateway would pass the function's answer on, and another tenant is served."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import httpx
import psycopg
from psycopg.rows import dict_row

from local.database import DatabaseUrls
from support.db.connection import SET_TENANT
from support.models.settings import LimitsSettings
from support.services.rate_limits import set_api_limits


def test_a_burst_over_the_budget_gets_429_with_retry_after_and_another_tenant_is_served(
    client_for: Callable[..., httpx.Client], db: DatabaseUrls, tenant: UUID, other_tenant: UUID
) -> None:
    with psycopg.connect(db.owner, row_factory=dict_row) as conn, conn.cursor() as cur:
        cur.execute(SET_TENANT, (str(tenant),))
        set_api_limits(cur, tenant, LimitsSettings(api_burst=3, api_per_second=0.05))
    api, other = client_for(tenant), client_for(other_tenant)

    replies = [api.get("/api/support/tickets") for _ in range(5)]

    assert [r.status_code for r in replies] == [200] * 3 + [429] * 2
    assert replies[-1].json() == {
        "success": False,
        "error": {"code": "rate_limited", "message": "too many requests for this desk; try again later", "details": []},
    }
    assert 1 <= int(replies[-1].headers["retry-after"]) <= 20
    assert [other.get("/api/support/tickets").status_code for _ in range(5)] == [200] * 5
