"""Least privilege, on the IAM that CloudFormation receives: template.yaml translated by SAM's own translator
(tests/contract/sam_translate.py under .venv-sam, so the policy templates are expanded as SAM expands them), and
every role's statements walked. No wildcard action; no `*` resource (Lambda's ENI and log actions, which have no
narrower resource, come only from the two AWS managed policies SAM attaches); Secrets Manager reads of only the
secrets a function needs; ManageConnections only on the WebSocket API's @connections."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from typing import Any

import pytest

from local.template import REPO
from tests.contract.test_template import (
    CLAIM_ATTACHMENTS_POLICY,
    DELETE_ATTACHMENTS_POLICY,
    EMAIL_INBOUND_POLICY,
    EXPORT_FILES_POLICY,
    PRESIGN_ATTACHMENTS_POLICY,
    PRIVACY_FUNCTION_POLICIES,
    PRIVACY_JOB_POLICY,
    READ_INBOUND_MAIL,
    WRITE_ARCHIVE_POLICY,
)

SAM_PYTHON = REPO / ".venv-sam" / "bin" / "python"
MANAGED_BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
MANAGED_VPC = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
API_GATEWAY_LOGS = {
    "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

APP_SECRET = {"Fn::If": ["UseRdsProxy", {"Ref": "AppDbProxySecret"}, {"Ref": "AppDbSecret"}]}
# What each function's role may read from Secrets Manager, and nothing more.
SECRETS_READ: dict[str, list[Any]] = {
    "TicketsFunction": [APP_SECRET],
    "AgentsFunction": [APP_SECRET],
    "CannedResponsesFunction": [APP_SECRET],
    "ChatFunction": [APP_SECRET],
    "DashboardFunction": [APP_SECRET],
    "WidgetsFunction": [{"Ref": "VisitorTokenSecret"}, APP_SECRET],
    "SettingsFunction": [APP_SECRET],
    "ContactsFunction": [APP_SECRET],
    "ChannelsFunction": [APP_SECRET],
    # the audit trail's reads (GET /api/support/audit)
    "AuditFunction": [APP_SECRET],
    # the contacts backfill job: the API's role, the API's secret
    "ContactsBackfillFunction": [APP_SECRET],
    "WebSocketFunction": [APP_SECRET],
    "WebSocketAuthorizerFunction": [{"Ref": "VisitorTokenSecret"}, APP_SECRET],
    "BroadcastFunction": [APP_SECRET],
    "AutomationsFunction": [APP_SECRET],
    "EmailOutboxFunction": [APP_SECRET],
    # the every-minute workflow sweep: the API's role (sla_sweep, SECURITY DEFINER), the API's secret
    "WorkflowSweepFunction": [APP_SECRET],
    # privacy requests: the routes and the job, the API's role and secret
    "PrivacyFunction": [APP_SECRET],
    "PrivacyJobFunction": [APP_SECRET],
    "EmailInboundFunction": [APP_SECRET],
    # webhooks: the admin's routes, and the deliveries (the API's role, the API's secret)
    "WebhooksFunction": [APP_SECRET],
    "WebhookDeliveryFunction": [APP_SECRET],
    "AnalyticsFunction": [{"Ref": "AnalyticsDbSecret"}],
    "MigrateFunction": [
        {"Fn::GetAtt": ["DbCluster", "MasterUserSecret.SecretArn"]},
        {"Ref": "AppDbSecret"},
        {"Ref": "AnalyticsDbSecret"},
    ],
    "PreTokenFunction": [],
    # attachments: upload and download URLs (sql/0041)
    "AttachmentsFunction": [APP_SECRET],
}
# the widgets function closes a revoked key's connections; the broadcast function tells the whole staff
# the automations function posts a rule's notify_staff to the staff's connections
FAN_OUT = {"ChatFunction", "WebSocketFunction", "WidgetsFunction", "BroadcastFunction", "AutomationsFunction"}
# who may invoke the broadcast function: the functions whose changes start a broadcast, and the function itself
# (the slices of a large audience), by its name
BROADCASTERS = {"ChatFunction", "WebSocketFunction", "AgentsFunction", "AutomationsFunction"}
BROADCAST_ARN = {"Fn::GetAtt": ["BroadcastFunction", "Arn"]}
# who may invoke the automations function: the tickets function, whose changes start a run after their commit
AUTOMATIONS_ARN = {"Fn::GetAtt": ["AutomationsFunction", "Arn"]}
# who may invoke the privacy job: the privacy function (after a request) and the workflow sweep (a lost run)
PRIVACY_JOB_ARN = {"Fn::GetAtt": ["PrivacyJobFunction", "Arn"]}
# who may invoke the webhook delivery function: the functions whose changes write deliveries (its dispatch)
WEBHOOK_STARTERS = {"TicketsFunction", "ChatFunction", "WidgetsFunction", "ChannelsFunction", "EmailInboundFunction"}
WEBHOOKS_ARN = {"Fn::GetAtt": ["WebhookDeliveryFunction", "Arn"]}
BROADCAST_ITSELF = {
    "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-broadcast"
}
CONNECTIONS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}"
    "/${Stage}/*/@connections/*"
}


@cache
def translated() -> dict[str, Any]:
    if not SAM_PYTHON.is_file():
        pytest.fail("needs .venv-sam (aws-sam-cli): run `make test`, or `make validate` once")
    result = subprocess.run(
        [str(SAM_PYTHON), str(REPO / "tests" / "contract" / "sam_translate.py"), str(REPO / "template.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def roles() -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in translated()["Resources"].items() if v["Type"] == "AWS::IAM::Role"}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for each in role.get("Policies", []):
        # a policy under a condition (`!If [Condition, policy, !Ref AWS::NoValue]`): its statements count as granted
        policy = each["Fn::If"][1] if "Fn::If" in each else each
        document = policy["PolicyDocument"]
        found.extend(document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]])
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcards(statement: dict[str, Any]) -> list[str]:
    """What is too broad in one statement: a `*` (or `service:*`) action, or a `*` resource."""
    problems = []
    for action in _as_list(statement.get("Action", [])):
        if isinstance(action, str) and (action == "*" or action.endswith(":*")):
            problems.append(f"action {action}")
    if "NotAction" in statement or "NotResource" in statement:
        problems.append("NotAction/NotResource")
    for resource in _as_list(statement.get("Resource", [])):
        if resource == "*" or (isinstance(resource, str) and resource.endswith(":*")):
            problems.append(f"resource {resource}")
    return problems


def test_the_wildcard_check_finds_wildcards() -> None:
    # The walker below would pass vacuously if it could not see a wildcard: it sees each kind.
    assert wildcards({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b"}) == ["action *"]
    assert wildcards({"Effect": "Allow", "Action": ["secretsmanager:*"], "Resource": "x"}) == [
        "action secretsmanager:*"
    ]
    assert wildcards({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": ["*"]}) == ["resource *"]
    assert wildcards({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:us-east-1:1:q"}) == []


def test_every_function_has_a_role_made_from_the_template() -> None:
    functions = {k for k, v in translated()["Resources"].items() if v["Type"] == "AWS::Lambda::Function"}
    assert functions == set(SECRETS_READ)
    for function in functions:
        assert f"{function}Role" in roles(), f"{function} has no role of its own"


@pytest.mark.parametrize("role_id", sorted(roles()))
def test_no_role_has_a_wildcard_action_or_resource(role_id: str) -> None:
    role = roles()[role_id]
    for statement in statements(role):
        assert wildcards(statement) == [], f"{role_id}: {statement}"
    # The only `*` resources are in AWS's two Lambda policies: logs, and the ENIs of a function in a VPC; and in
    # API Gateway's own logging policy, on the role the region's API Gateway account setting names (its log groups
    # are each API's choice, tests/contract/test_access_logs.py).
    allowed = [API_GATEWAY_LOGS] if role_id == "ApiGatewayCloudWatchRole" else [MANAGED_BASIC, MANAGED_VPC]
    assert all(arn in allowed for arn in role.get("ManagedPolicyArns", [])), role_id


@pytest.mark.parametrize("function_id", sorted(SECRETS_READ))
def test_each_function_reads_only_its_secrets_and_posts_only_to_connections(function_id: str) -> None:
    role = roles()[f"{function_id}Role"]
    secrets, connections, invokes, other = [], [], [], []
    for statement in statements(role):
        actions = _as_list(statement["Action"])
        if actions == ["secretsmanager:GetSecretValue"]:
            # SAM's template: {"Fn::Sub": ["${secretArn}", {"secretArn": <what the template gave>}]}
            secrets.append(statement["Resource"]["Fn::Sub"][1]["secretArn"])
        elif actions == ["execute-api:ManageConnections"]:
            connections.append(statement["Resource"])
        elif actions == ["lambda:InvokeFunction"]:
            invokes.append(statement["Resource"])
        else:
            other.append(statement)
    assert secrets == SECRETS_READ[function_id]
    assert connections == ([CONNECTIONS_ARN] if function_id in FAN_OUT else [])
    expected_invokes = {
        "BroadcastFunction": [BROADCAST_ITSELF],
        "TicketsFunction": [AUTOMATIONS_ARN],
        "PrivacyFunction": [PRIVACY_JOB_ARN],
        "WorkflowSweepFunction": [PRIVACY_JOB_ARN],
    }.get(function_id, [BROADCAST_ARN] if function_id in BROADCASTERS else [])
    if function_id in WEBHOOK_STARTERS:
        expected_invokes = [*expected_invokes, WEBHOOKS_ARN]
    assert [_invoke_target(resource) for resource in invokes] == expected_invokes
    # The rollup's failed runs go to its dead-letter queue (EventInvokeConfig's destination), that queue only.
    dead_letters = [
        {
            "Action": "sqs:SendMessage",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": ["AnalyticsDeadLetterQueue", "Arn"]},
        }
    ]
    # The email outbox sends as the stack's sender domain only, through its configuration set (with a sender domain).
    send_as_the_domain = [
        {
            "Effect": "Allow",
            "Action": "ses:SendRawEmail",
            "Resource": [
                {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${EmailSenderDomain}"},
                {
                    "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}"
                    ":configuration-set/${EmailConfigurationSet}"
                },
            ],
            "Condition": {"StringLike": {"ses:FromAddress": {"Fn::Sub": "*@${EmailSenderDomain}"}}},
        }
    ]
    # Email in, privacy, retention and attachments: the S3 statements tests/contract/test_template.py expects of
    # template.yaml, as SAM passes them through (their reasons are there). The privacy job's failed runs also go to
    # its own dead-letter queue (EventInvokeConfig's destination).
    privacy_job = [
        {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": {"Fn::GetAtt": ["PrivacyDeadLetterQueue", "Arn"]}},
        *PRIVACY_JOB_POLICY["Statement"],
    ]
    # Webhooks: the sweep and the delivery function send to the delivery queue, and the function receives from it.
    send_webhooks = {
        "Action": ["sqs:SendMessage*"],
        "Effect": "Allow",
        "Resource": {
            "Fn::Sub": [
                "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${queueName}",
                {"queueName": {"Fn::GetAtt": ["WebhookDeliveryQueue", "QueueName"]}},
            ]
        },
    }
    receive_webhooks = {
        "Effect": "Allow",
        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
        "Resource": {"Fn::GetAtt": ["WebhookDeliveryQueue", "Arn"]},
    }
    [write_archive] = WRITE_ARCHIVE_POLICY["Statement"]
    [delete_files] = DELETE_ATTACHMENTS_POLICY["Statement"]
    presign, claim = PRESIGN_ATTACHMENTS_POLICY["Statement"], CLAIM_ATTACHMENTS_POLICY["Statement"]
    expected_other = {
        "PrivacyFunction": [*PRIVACY_FUNCTION_POLICIES[0]["Statement"], *PRIVACY_FUNCTION_POLICIES[2]["Statement"]],
        "PrivacyJobFunction": [*privacy_job, delete_files, *EXPORT_FILES_POLICY["Statement"]],
        "WorkflowSweepFunction": [send_webhooks, write_archive, delete_files],
        "WebhookDeliveryFunction": [send_webhooks, receive_webhooks],
        "AnalyticsFunction": dead_letters,
        "EmailOutboxFunction": send_as_the_domain,
        "EmailInboundFunction": EMAIL_INBOUND_POLICY["Statement"],
        "TicketsFunction": [READ_INBOUND_MAIL, *claim],
        "ChatFunction": claim,
        "WebSocketFunction": claim,
        "WidgetsFunction": presign,
        "AttachmentsFunction": presign,
    }
    assert other == expected_other.get(function_id, [])
    in_vpc = "VpcConfig" in translated()["Resources"][function_id]["Properties"]
    assert set(role["ManagedPolicyArns"]) == ({MANAGED_BASIC, MANAGED_VPC} if in_vpc else {MANAGED_BASIC})


def _invoke_target(resource: Any) -> Any:
    """SAM's LambdaInvokePolicy writes the function's ARN and the ARN with `:*` (its versions and aliases): the
    function it names."""
    if isinstance(resource, list):
        return _invoke_target(resource[0])
    if isinstance(resource, dict) and "Fn::Sub" in resource and isinstance(resource["Fn::Sub"], list):
        named = resource["Fn::Sub"][1].get("functionName")
        return {"Fn::GetAtt": [named["Ref"], "Arn"]} if isinstance(named, dict) and "Ref" in named else resource
    return resource


def test_every_function_that_uses_the_database_is_in_the_vpc_and_waits_for_the_migrations() -> None:
    resources = translated()["Resources"]
    for function_id, secrets in SECRETS_READ.items():
        uses_database = bool(secrets)
        function = resources[function_id]
        assert ("VpcConfig" in function["Properties"]) == uses_database, function_id
        if uses_database and function_id != "MigrateFunction":
            assert "Migration" in _as_list(function.get("DependsOn", [])), function_id


def test_the_proxy_and_the_scheduler_roles_are_scoped() -> None:
    proxy = statements(roles()["DbProxyRole"])
    assert proxy == [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "AppDbSecret"}}]
    scheduler = statements(roles()["AnalyticsFunctionDailyRollupRole"])
    assert {a for s in scheduler for a in _as_list(s["Action"])} == {"lambda:InvokeFunction", "sqs:SendMessage"}


if __name__ == "__main__":  # pragma: no cover - a way to look at the translation by hand
    json.dump(translated(), sys.stdout, indent=1)
