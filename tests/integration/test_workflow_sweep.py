"""The workflow sweep's handler (functions/workflow_sweep): the schedule's clock to every step, the SLA step's
events counted, a failing step reported without stopping the others."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from local.database import DatabaseUrls
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import new_ticket

EVENT = Path(__file__).parents[2] / "events" / "workflow_sweep" / "scheduled.json"


class Context:
    function_name = "WorkflowSweepFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WorkflowSweepFunction"
    aws_request_id = "sweep-request"


def test_the_schedules_event_runs_the_sla_step_with_the_schedules_clock(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient
) -> None:
    from functions.workflow_sweep import app

    ticket = new_ticket(tickets_api, priority="urgent")
    due = datetime.fromisoformat(ticket["firstResponseDueAt"])
    event = {**json.loads(EVENT.read_text()), "scheduledTime": (due + timedelta(minutes=1)).isoformat()}
    result = app.lambda_handler(event, Context())  # type: ignore[arg-type]
    assert result["ok"] is True and result["failed"] == []
    assert result["steps"]["sla"] >= 1
    assert datetime.fromisoformat(result["at"]) == due + timedelta(minutes=1)
    again = app.lambda_handler(event, Context())  # type: ignore[arg-type]
    assert again["steps"]["sla"] == 0  # recorded once


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
    result = app.lambda_handler(event, Context())  # type: ignore[arg-type]
    assert result["ok"] is True, result

    # Then the breach ran the rule: the ticket is urgent, and the run is on the ticket's record
    assert tickets_api.get(f"/api/support/tickets/{ticket['id']}").data["priority"] == "urgent"
    runs = rules.get(f"/api/support/tickets/{ticket['id']}/automation-runs").data
    breached = [r for r in runs if r["event"] == "sla_breached"]
    assert len(breached) == 1, runs

    # And once every breach of the minute is recorded (raising the priority moved the ticket's resolution due time
    # into the past: a breach of its own, run once too), another sweep of the same minute runs nothing more
    app.lambda_handler(event, Context())  # type: ignore[arg-type]
    runs = rules.get(f"/api/support/tickets/{ticket['id']}/automation-runs").data
    settled = len([r for r in runs if r["event"] == "sla_breached"])
    again = app.lambda_handler(event, Context())  # type: ignore[arg-type]
    assert again["steps"] == {"sla": 0, "automations": 0, "chat_expiry": 0, "idempotency": 0}
    runs = rules.get(f"/api/support/tickets/{ticket['id']}/automation-runs").data
    assert len([r for r in runs if r["event"] == "sla_breached"]) == settled <= 2
