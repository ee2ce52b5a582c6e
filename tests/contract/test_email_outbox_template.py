"""The EmailOutboxFunction in template.yaml: drained every minute with the Input the handler reads, SES's bounces
and complaints delivered to it through the stack's configuration set and SNS topic (which only SES of this account
may publish to), its own log group, and the configuration set named to the code. Its IAM is checked with every
function's in test_template.py and test_deploy_policies.py."""

from __future__ import annotations

import json

from local.template import load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
FUNCTION = RESOURCES["EmailOutboxFunction"]["Properties"]


def test_the_outbox_is_drained_every_minute_and_hears_ses_feedback() -> None:
    events = FUNCTION["Events"]
    assert sorted(events) == ["Drain", "SesFeedback"]  # no HTTP route: the API never reaches it
    drain = events["Drain"]
    assert drain["Type"] == "ScheduleV2"
    assert drain["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert drain["Properties"]["State"] == "ENABLED"
    assert json.loads(drain["Properties"]["Input"]) == {"scheduledTime": "<aws.scheduler.scheduled-time>"}
    assert events["SesFeedback"] == {"Type": "SNS", "Properties": {"Topic": {"Ref": "EmailFeedbackTopic"}}}
    assert FUNCTION["Timeout"] == 60  # above the handler's time budget (functions/email_outbox/app.py)
    assert FUNCTION["LoggingConfig"] == {"LogGroup": {"Ref": "EmailOutboxFunctionLogGroup"}}
    assert FUNCTION["Environment"]["Variables"]["SES_CONFIGURATION_SET"] == {"Ref": "EmailConfigurationSet"}


def test_bounces_and_complaints_reach_the_topic_only_ses_may_publish_to() -> None:
    destination = RESOURCES["EmailFeedbackDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "EmailConfigurationSet"}
    assert destination["EventDestination"]["Enabled"] is True
    assert sorted(destination["EventDestination"]["MatchingEventTypes"]) == ["bounce", "complaint"]
    assert destination["EventDestination"]["SnsDestination"] == {"TopicARN": {"Ref": "EmailFeedbackTopic"}}
    (statement,) = RESOURCES["EmailFeedbackTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"] == {"StringEquals": {"AWS:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_the_handler_time_budget_fits_the_timeout() -> None:
    from functions.email_outbox import app

    assert FUNCTION["Timeout"] >= app.TIME_BUDGET_SECONDS + 10
