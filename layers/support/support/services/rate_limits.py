"""Rate limits of the public ways in: token buckets kept in PostgreSQL, per tenant.

The widget key is public and a browser's `Origin` binds only browsers, so the desk limits what one source can do
through a tenant's widget, in PostgreSQL rather than in memory: a Lambda execution environment serves one request
at a time and there are as many of them as requests in flight, so a counter in one of them counts nothing.

* The widget session route and visitor `$connect`: a bucket per (tenant, source IP) and one per (tenant, widget
  key), in `rate_limit_counters`. The key's bucket is spent only by requests the IP's bucket admitted, so one
  flooding source does not empty the key's budget for everyone else. Over either, the session route answers 429
  with `Retry-After`, and the authorizer refuses the connection.
* The widget's web form (POST /api/support/widget/tickets): its own buckets per (tenant, source IP) and per
  (tenant, widget key), the same way: 429 with `Retry-After` over either.
* Each WebSocket connection's actions: a bucket in its own `ws_connections` row (support.services.connections).
* The authenticated API, every route of every function: a bucket per tenant (api_per_tenant(), or the tenant's own
  `limits` settings), taken by a transaction of its own that rides in front of the request's first transaction, in
  the same pipeline (support.db.connection.Admission: no round trip of its own). Over it: 429 with `Retry-After`,
  and nothing of the request is done.

Every bucket is keyed by the tenant, so one tenant's flood never spends another tenant's budget (API Gateway's
stage throttling, which every tenant shares, stays as the last line). A bucket holds up to `burst` tokens and
gains `per_second` a second; a request takes one, and is refused, without taking one, when less than one is left.

Invariants: one statement takes the tokens of a request (a chain of `INSERT ... ON CONFLICT DO UPDATE`, each
after the previous admitted), so concurrent requests from many execution environments serialise on the
bucket's row and never admit more than the bucket holds. Idle rows (full again for an hour) are deleted a few
at a time by the same statement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from support.config import get_settings
from support.db import write_one
from support.db.connection import Admission, Cursor
from support.errors import RateLimited

if TYPE_CHECKING:  # every HTTP handler imports this module (support.http): not the settings' models with it
    from support.models.settings import LimitsSettings

# A row idle this long is full again for every bucket below (burst / per_second is at most a few minutes), so
# deleting it changes no answer.
IDLE_ROWS_KEPT = "1 hour"
IDLE_ROWS_DELETED_PER_TAKE = 20


@dataclass(frozen=True)
class Bucket:
    scope: str  # what is counted, per tenant: "session-ip", "connect-key", ...
    burst: int
    per_second: float

    def retry_after(self, level: float) -> int:
        """Whole seconds until a bucket at `level` (below one) holds one token again."""
        return max(1, math.ceil((1 - level) / self.per_second))


# The widget session route: a browser asks once per page load (and again after 30 days); a visitor behind a shared
# address (an office, a mobile carrier's NAT) shares the IP's budget, hence its burst.
SESSION_PER_IP = Bucket("session-ip", burst=30, per_second=0.5)
SESSION_PER_KEY = Bucket("session-key", burst=300, per_second=20)
# Visitor $connect: one per session and one per reconnect (the widget reconnects with backoff).
CONNECT_PER_IP = Bucket("connect-ip", burst=60, per_second=1)
CONNECT_PER_KEY = Bucket("connect-key", burst=600, per_second=30)
# The widget's web form: each one a ticket, so far fewer than sessions. A person sends one, perhaps a second after
# a typo; an office behind one address a few an hour. Per key: a busy shop's forms, not a script's.
FORM_PER_IP = Bucket("form-ip", burst=5, per_second=1 / 60)
FORM_PER_KEY = Bucket("form-key", burst=60, per_second=0.5)
# A WebSocket connection's actions (messages, typing, sync, ...): a visitor's, who types in one chat; and a staff
# member's, whose one connection may carry twenty chats at once (signed in, so answerable for what it sends).
ACTIONS_PER_CONNECTION = Bucket("connection", burst=60, per_second=5)
STAFF_ACTIONS_PER_CONNECTION = Bucket("connection", burst=300, per_second=50)


def level_sql(tokens: str, refilled_at: str, burst: str, per_second: str) -> str:
    """The SQL expression of a bucket's level now, from its stored level `tokens` at `refilled_at` (NULL: full)."""
    return (
        f"least({burst}::float8, coalesce({tokens} + {per_second}::float8"
        f" * greatest(0, extract(epoch FROM statement_timestamp() - {refilled_at}))::float8, {burst}::float8))"
    )


def _take_one(position: int, after: str | None) -> sql.Composable:
    """The CTE that takes a token of check `position`, from the rows of CTE `after` that were admitted."""
    p = f"p{position}_"
    level = level_sql("c.tokens", "c.refilled_at", f"%({p}burst)s", f"%({p}rate)s")
    source = f"FROM {after} WHERE {after}.admitted" if after else ""
    return sql.SQL(
        f"""take{position} AS (
        INSERT INTO rate_limit_counters AS c (user_id, scope, subject, tokens, admitted, refilled_at)
        SELECT %(tenant)s, %({p}scope)s, %({p}subject)s, %({p}burst)s::float8 - 1, true, statement_timestamp() {source}
        ON CONFLICT (user_id, scope, subject) DO UPDATE SET
            tokens = {level} - CASE WHEN {level} >= 1 THEN 1 ELSE 0 END,
            admitted = {level} >= 1,
            refilled_at = statement_timestamp()
        RETURNING tokens, admitted)"""
    )


Checks = Sequence[tuple[Bucket, str]]  # (bucket, subject): an address, a widget key


def _take_tokens_statement(tenant_id: UUID, checks: Checks) -> tuple[sql.Composed, dict[str, Any]]:
    params: dict[str, Any] = {"tenant": tenant_id, "idle": IDLE_ROWS_KEPT, "prune": IDLE_ROWS_DELETED_PER_TAKE}
    ctes: list[sql.Composable] = []
    for position, (bucket, subject) in enumerate(checks):
        p = f"p{position}_"
        params |= {f"{p}scope": bucket.scope, f"{p}subject": subject[:200] or "-", f"{p}burst": bucket.burst}
        params[f"{p}rate"] = bucket.per_second
        ctes.append(_take_one(position, f"take{position - 1}" if position else None))
    # The tenant's idle rows, a few at a time (never one this statement takes: a row is changed once a statement).
    ctes.append(
        sql.SQL(
            """pruned AS (
            DELETE FROM rate_limit_counters WHERE (user_id, scope, subject) IN (
                SELECT user_id, scope, subject FROM rate_limit_counters
                WHERE user_id = %(tenant)s AND refilled_at < statement_timestamp() - %(idle)s::interval
                  AND NOT EXISTS (SELECT FROM unnest(%(taken_scopes)s::text[], %(taken_subjects)s::text[]) t (s, j)
                                  WHERE t.s = scope AND t.j = subject)
                LIMIT %(prune)s))"""
        )
    )
    params["taken_scopes"] = [bucket.scope for bucket, _ in checks]
    params["taken_subjects"] = [params[f"p{n}_subject"] for n in range(len(checks))]
    columns = sql.SQL(", ").join(
        sql.SQL("(SELECT tokens FROM {t}) AS {tok}, (SELECT admitted FROM {t}) AS {adm}").format(
            t=sql.Identifier(f"take{n}"), tok=sql.Identifier(f"tokens{n}"), adm=sql.Identifier(f"admitted{n}")
        )
        for n in range(len(checks))
    )
    statement = sql.SQL("WITH {ctes} SELECT {columns}").format(ctes=sql.SQL(", ").join(ctes), columns=columns)
    return statement, params


def _retry_after(row: Mapping[str, Any] | None, checks: Checks) -> int | None:
    for position, (bucket, _) in enumerate(checks):
        if not (row or {}).get(f"admitted{position}"):
            return bucket.retry_after(float((row or {}).get(f"tokens{position}") or 0))
    return None


def take_tokens(cur: Cursor, tenant_id: UUID, checks: Checks) -> int | None:
    """Take one token from each of `checks` (bucket, subject), in order, each only if all before it admitted, in
    the caller's transaction. None when all admitted; else the whole seconds until the first refusing bucket admits
    again. One statement: one round trip."""
    cur.execute(*_take_tokens_statement(tenant_id, checks))
    return _retry_after(cur.fetchone(), checks)


def take_tokens_alone(tenant_id: UUID, checks: Checks) -> int | None:
    """take_tokens in a transaction of its own: one round trip in all (support.db.write_one)."""
    return _retry_after(write_one(tenant_id, *_take_tokens_statement(tenant_id, checks)), checks)


# The authenticated API: one bucket per tenant, for every route of every function (a request is a request, a read
# or a write). Its size is the deployment's (TENANT_API_BURST, TENANT_API_PER_SECOND: support.config), unless the
# operator gave the tenant its own in its `limits` row of tenant_settings (LimitsSettings).
def api_per_tenant() -> Bucket:
    settings = get_settings()
    return Bucket("api", burst=settings.tenant_api_burst, per_second=settings.tenant_api_per_second)


LIMITS_AREA = "limits"
API_REFUSED = "APR29"  # the SQLSTATE of api_admit's refusal, its detail the Retry-After

# One call (sql/definitions/rate_limits.sql): it binds the tenant, reads its budget (its `limits` row, else the
# defaults given), and takes a token: api_admit_answer answers NULL, or the whole seconds to wait (a refusal writes
# nothing, and is no error in the server's log); api_admit raises API_REFUSED instead, for a check with the
# request's work behind it in the same pipeline (support.db.connection.Admission says which goes where).
_TAKE_API = "SELECT public.api_admit_answer(%(tenant)s, %(burst)s, %(rate)s) AS wait"
_TAKE_API_OR_STOP = "SELECT public.api_admit(%(tenant)s, %(burst)s, %(rate)s)"


def _api_refusal(seconds: int) -> RateLimited:
    return RateLimited("too many requests for this desk; try again later", retry_after=seconds)


def api_admission(tenant_id: UUID) -> Admission:
    """The tenant's API check for one request (support.http puts it in front of the request's first transaction)."""
    default = api_per_tenant()
    params = {"tenant": tenant_id, "burst": float(default.burst), "rate": default.per_second}
    return Admission(tenant_id, _TAKE_API, _TAKE_API_OR_STOP, params, API_REFUSED, _api_refusal)


def set_api_limits(cur: Cursor, tenant_id: UUID, limits: LimitsSettings, *, by: str = "operator") -> None:
    """The operator's change of a tenant's API budget, in the caller's transaction (the tenant bound, or as the
    owner): the tenant's `limits` row of tenant_settings. Its next request counts against the new budget."""
    cur.execute(
        """INSERT INTO tenant_settings (user_id, area, settings, updated_at, updated_by) VALUES (%s, %s, %s, now(), %s)
        ON CONFLICT (user_id, area) DO UPDATE
        SET settings = excluded.settings, updated_at = excluded.updated_at, updated_by = excluded.updated_by""",
        (tenant_id, LIMITS_AREA, Jsonb(limits.model_dump(mode="json", by_alias=False, exclude_none=True)), by),
    )
