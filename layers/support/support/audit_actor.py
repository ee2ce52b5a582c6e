"""Who acts, for the audit trail: the actor of the current request or job, bound with the tenant in every transaction.

The capture trigger (sql/definitions/audit.sql) reads the transaction's `app.actor` setting, which the statement that
binds the tenant sets too (support.db.connection: one statement, no extra round trip). Its value is what this module
holds for the running request or job, in a context variable: the HTTP resolver sets it from the verified claims and
API Gateway's request id (support.http), the WebSocket handler from the authorizer's context (support.websocket), and
each job names itself (`acting_as(job("workflow_sweep"))`). Without one, the entry records the actor `unknown` and
the database role, rather than failing: a forgotten binding shows in the trail, it does not stop the desk.

The value is compact JSON (`{"type": "agent", "id": "<agent id>", "requestId": "..."}`): `type` is `admin`, `agent`,
`visitor`, `job` or `system`; `id` the agent id, the visitor id or the job's name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

_actor: ContextVar[str] = ContextVar("support_audit_actor", default="")


@dataclass(frozen=True)
class Actor:
    type: str
    id: str | None = None
    request_id: str | None = None

    def setting(self) -> str:
        value = {"type": self.type, "id": self.id, "requestId": self.request_id}
        return json.dumps({k: v for k, v in value.items() if v}, separators=(",", ":"))


def job(name: str) -> Actor:
    """A scheduled or queued job, named as its function (`workflow_sweep`, `analytics_rollup`, ...)."""
    return Actor("job", name)


def actor_setting() -> str:
    """What the transaction's `app.actor` is set to: the current actor's JSON, or '' (recorded as `unknown`)."""
    return _actor.get()


def bind(actor: Actor | None) -> None:
    """The actor of the request that starts now (None: nobody known yet). Set at the start of each invocation, so a
    warm execution environment never lends the previous caller's name to the next request."""
    _actor.set(actor.setting() if actor is not None else "")


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """The actor for the block, the previous one restored after it."""
    token = _actor.set(actor.setting())
    try:
        yield
    finally:
        _actor.reset(token)
