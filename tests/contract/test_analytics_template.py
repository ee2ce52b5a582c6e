"""The AnalyticsFunction in template.yaml: a daily schedule shortly after midnight UTC with the Input the handler
reads, retries and a dead-letter queue for both delivery failures and failed runs, its own log group, and its
own database credentials (the job role's, never the API's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from local.template import REPO, load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
FUNCTION = RESOURCES["AnalyticsFunction"]["Properties"]
DLQ_ARN = {"Fn::GetAtt": ["AnalyticsDeadLetterQueue", "Arn"]}


def test_the_rollup_runs_daily_shortly_after_midnight_utc() -> None:
    events = FUNCTION["Events"]
    assert list(events) == ["DailyRollup"]  # no HTTP route: the API never reaches it
    schedule = events["DailyRollup"]
    assert schedule["Type"] == "ScheduleV2"
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "cron(15 0 * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert props["State"] == "ENABLED"
    # The handler derives its days from the scheduled time the Input carries, so a retry does the same days.
    assert json.loads(props["Input"]) == {"scheduledTime": "<aws.scheduler.scheduled-time>"}


def test_the_schedule_retries_and_sends_what_it_cannot_deliver_to_the_dead_letter_queue() -> None:
    props = FUNCTION["Events"]["DailyRollup"]["Properties"]
    assert 1 <= props["RetryPolicy"]["MaximumRetryAttempts"] <= 5
    assert 60 <= props["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86_400
    assert props["DeadLetterConfig"] == {"Arn": DLQ_ARN}


def test_a_failed_run_is_retried_and_then_goes_to_the_dead_letter_queue() -> None:
    # EventBridge Scheduler invokes asynchronously: a run that raises is retried by Lambda, then sent on.
    config = FUNCTION["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": DLQ_ARN}
    queue = RESOURCES["AnalyticsDeadLetterQueue"]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_it_logs_to_its_own_log_group_and_has_time_for_a_backfill() -> None:
    assert FUNCTION["LoggingConfig"] == {"LogGroup": {"Ref": "AnalyticsFunctionLogGroup"}}
    assert RESOURCES["AnalyticsFunctionLogGroup"]["Type"] == "AWS::Logs::LogGroup"
    assert FUNCTION["CodeUri"] == "functions/analytics/"
    assert (REPO / "functions" / "analytics" / "app.py").is_file()
    assert int(FUNCTION["Environment"]["Variables"]["DB_STATEMENT_TIMEOUT_MS"]) < FUNCTION["Timeout"] * 1000


def test_it_connects_with_the_job_roles_credentials_only() -> None:
    variables = FUNCTION["Environment"]["Variables"]
    # Its own role's generated secret, straight to the writer: never the API's, never through the proxy.
    assert variables["DB_SECRET_ARN"] == {"Ref": "AnalyticsDbSecret"}
    assert (
        "DATABASE_URL" not in variables
        and "DATABASE_URL" not in TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    )
    secret = RESOURCES["AnalyticsDbSecret"]["Properties"]["GenerateSecretString"]
    assert '"username":"support_analytics_job"' in secret["SecretStringTemplate"]["Fn::Sub"]
    assert FUNCTION["Policies"] == [
        {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "AnalyticsDbSecret"}}}
    ]


def test_the_sample_events_are_the_two_the_handler_takes() -> None:
    scheduled = json.loads((REPO / "events" / "analytics" / "scheduled.json").read_text())
    backfill = json.loads((REPO / "events" / "analytics" / "backfill.json").read_text())
    assert set(scheduled) == {"scheduledTime"}
    assert datetime.fromisoformat(scheduled["scheduledTime"]).tzinfo == UTC
    assert set(backfill) == {"from", "to", "tenantId"}
