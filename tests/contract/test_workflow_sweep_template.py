"""The WorkflowSweepFunction in template.yaml: run every minute by EventBridge Scheduler with the Input the handler
reads, as the API's role (its IAM is checked with every function's in test_template.py and
test_deploy_policies.py), its own log group, a timeout above what a sweep takes."""

from __future__ import annotations

import json

from local.template import load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
FUNCTION = RESOURCES["WorkflowSweepFunction"]["Properties"]


def test_the_sweep_runs_every_minute() -> None:
    events = FUNCTION["Events"]
    assert sorted(events) == ["Sweep"]  # no HTTP route: the API never reaches it
    sweep = events["Sweep"]
    assert sweep["Type"] == "ScheduleV2"
    assert sweep["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert sweep["Properties"]["State"] == "ENABLED"
    assert json.loads(sweep["Properties"]["Input"]) == {"scheduledTime": "<aws.scheduler.scheduled-time>"}
    assert FUNCTION["CodeUri"] == "functions/workflow_sweep/"
    assert FUNCTION["Timeout"] == 60
    assert FUNCTION["LoggingConfig"] == {"LogGroup": {"Ref": "WorkflowSweepFunctionLogGroup"}}


def test_the_sla_step_runs_first() -> None:
    from functions.workflow_sweep import app
    from support.services import sla

    assert app.STEPS[0] == ("sla", sla.sweep)
