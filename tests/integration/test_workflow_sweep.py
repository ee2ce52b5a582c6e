"""The workflow sweep's handler (functions/workflow_sweep): the schedule's clock to every step, the SLA step's
events counted, a failing step reported without stopping the others."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.models.automations import RuleCreate
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import new_ticket

EVENT = Path(__file__).parents[2] / "events" / "workflow_sweep" / "scheduled.json"


class Context:
    function_name = "WorkflowSweepFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WorkflowSweepFunction"
    aws_request_id = "sweep-request"


def _sweep_until_done(app: Any, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The sweep with one clock, again until its SLA step records nothing more: the test database holds every other
    test's tenants too, whose tickets the clock may make due, and one run takes at most a batch of them."""
    results = [app.lambda_handler(event, Context())]
    while results[-1]["steps"].get("sla") and len(results) < 100:
        results.append(app.lambda_handler(event, Context()))
    assert results[-1]["steps"]["sla"] == 0, "the sweep never caught up"
    return results


def _sla_events(db: DatabaseUrls, ticket_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(db.admin) as conn:
        rows = conn.execute(
            "SELECT target, kind FROM ticket_sla_events WHERE ticket_id = %s ORDER BY target, kind", (ticket_id,)
        ).fetchall()
    return [(str(target), str(kind)) for target, kind in rows]


def test_the_schedules_event_runs_the_sla_step_with_the_schedules_clock(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient
) -> None:
    from functions.workflow_sweep import app

    ticket = new_ticket(tickets_api, priority="urgent")
    due = datetime.fromisoformat(ticket["firstResponseDueAt"])
    event = {**json.loads(EVENT.read_text()), "scheduledTime": (due + timedelta(minutes=1)).isoformat()}
    results = _sweep_until_done(app, event)
    assert all(r["ok"] is True and r["failed"] == [] for r in results)
    assert results[0]["steps"]["sla"] >= 1
    assert datetime.fromisoformat(results[0]["at"]) == due + timedelta(minutes=1)
    recorded = _sla_events(db, ticket["id"])
    assert ("first_response", "breached") in recorded
    assert len(recorded) == len(set(recorded))  # each recorded once
    again = app.lambda_handler(event, Context())  # type: ignore[arg-type]
    assert again["steps"]["sla"] == 0
    assert _sla_events(db, ticket["id"]) == recorded


def test_the_sample_event_runs(db: DatabaseUrls) -> None:
    from functions.workflow_sweep import app

    result = app.lambda_handler(json.loads(EVENT.read_text()), Context())  # type: ignore[arg-type]
    assert result["ok"] is True


def test_a_failing_step_is_reported_and_the_others_still_run() -> None:
    from functions.workflow_sweep import app

    seen: list[datetime] = []

    def broken(now: datetime) -> list[Any]:
        raise RuntimeError("boom")

    def counting(now: datetime) -> int:
        seen.append(now)
        return 3

    now = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    result = app.run_steps(now, [("broken", broken), ("counting", counting)])
    assert result == {"ok": False, "at": now.isoformat(), "steps": {"counting": 3}, "failed": ["broken"]}
    assert seen == [now]


def test_an_event_without_a_time_uses_now() -> None:
    from functions.workflow_sweep import app

    before = datetime.now(UTC)
    assert before <= app.scheduled_time({}) <= datetime.now(UTC)
    assert app.scheduled_time({"scheduledTime": "2026-03-08T07:00:00Z"}) == datetime(2026, 3, 8, 7, tzinfo=UTC)
    with pytest.raises(app.WorkflowSweepFailed):
        raise app.WorkflowSweepFailed("x")


def test_an_sla_breach_fires_the_tenants_sla_breached_rule_in_the_same_sweep_once(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient
) -> None:
    from functions.automations import app as automations_app
    from functions.workflow_sweep import app

    # Given a rule that raises a breached ticket to urgent, and a low-priority ticket
    rules = HandlerClient(automations_app.lambda_handler, tenant=tenant)
    rule = rules.post(
        "/api/support/automations",
        {
            "name": "Escalate a breach",
            "event": "sla_breached",
            "actions": [{"type": "set_priority", "value": "urgent"}],
        },
    )
    assert rule.status == 201, rule.body
    ticket = new_ticket(tickets_api, priority="low")
    due = datetime.fromisoformat(ticket["firstResponseDueAt"])

    # When the sweep runs after the first response was due (its steps: SLA, then automations)
    event = {"scheduledTime": (due + timedelta(minutes=1)).isoformat()}
    results = _sweep_until_done(app, event)
    assert all(r["ok"] is True for r in results), results

    # Then the breach ran the rule: the ticket is urgent, and the run is on the ticket's record
    assert tickets_api.get(f"/api/support/tickets/{ticket['id']}").data["priority"] == "urgent"
    runs = rules.get(f"/api/support/tickets/{ticket['id']}/automation-runs").data
    breached = [r for r in runs if r["event"] == "sla_breached"]
    # one run per breach recorded (raising the priority brought the resolution target's due time into the past too)
    assert 1 <= len(breached) == len([e for e in _sla_events(db, ticket["id"]) if e[1] == "breached"]), runs

    # And another sweep of the same minute records and runs nothing more for it (raising the priority moved the
    # ticket's resolution due time into the past: a breach of its own, run once too, by the sweeps above)
    runs = rules.get(f"/api/support/tickets/{ticket['id']}/automation-runs").data
    settled = len([r for r in runs if r["event"] == "sla_breached"])
    again = app.lambda_handler(event, Context())  # type: ignore[arg-type]
    assert again["steps"]["sla"] == 0
    runs = rules.get(f"/api/support/tickets/{ticket['id']}/automation-runs").data
    assert len([r for r in runs if r["event"] == "sla_breached"]) == settled <= 2


def test_make_runs_schedule_loop_invokes_the_sweep_and_prints_what_it_did(
    db: DatabaseUrls, tenant: UUID, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make run` runs local.workflow_sweep (EventBridge Scheduler's every minute in AWS): each tick invokes
    WorkflowSweepFunction's handler with the schedule's event and prints what its steps did; an automation event left
    pending is run by it."""
    from local import workflow_sweep
    from support.db import tenant_transaction
    from support.services import automations

    automations.create_rule(
        Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin"),
        RuleCreate.model_validate(
            {
                "name": "urgent",
                "event": "ticket_created",
                "conditions": {"all": []},
                "actions": [{"type": "set_priority", "value": "urgent"}],
            }
        ),
    )
    with tenant_transaction(tenant) as cur:  # a ticket written without a kick: its event waits for the sweep
        cur.execute(
            """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)
            VALUES (%s, 'Ada', 'ada@example.com', 'Hi') RETURNING id""",
            (tenant,),
        )
        row = cur.fetchone()
        assert row is not None

    assert workflow_sweep.main(["--every", "0.01", "--times", "2"]) == 0

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("workflow sweep at")]
    assert len(lines) == 2, lines
    assert re.fullmatch(
        r"workflow sweep at \S+Z: sla \d+, automations [1-9]\d*, chat_expiry \d+, idempotency \d+, privacy \d+,"
        r" webhooks \d+, webhook_log \d+, retention \d+, uploads \d+, audit \d+, audit_check \d+",
        lines[0],
    )
    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT priority FROM support_tickets WHERE user_id = %s AND id = %s", (tenant, row["id"]))
        assert cur.fetchone() == {"priority": "urgent"}


def test_make_run_starts_the_workflow_sweep_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import ExitStack

    from local import run

    started: list[tuple[str, ...]] = []
    monkeypatch.setattr(run, "_run_schedule", lambda stack, module, *args: started.append((module, *args)))
    run._sweep_workflow(ExitStack())
    assert started == [("local.workflow_sweep", "--every", "60")]
