"""Access logs of both APIs in template.yaml: one JSON line per request (or WebSocket event) with the request id,
into a log group of the stack's with a retention, and nothing that carries a token (no header, no query string, no
path, no claim but the tenant's). The WebSocket API logs through the region's API Gateway account setting, which
the stack sets unless told that one exists (ApiGatewayLogRole)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.contract.test_deploy_template import PARAMETERS, RESOURCES, condition, overrides_of, parameter_values

HTTP_FORMAT = RESOURCES["HttpApi"]["Properties"]["AccessLogSettings"]
WEBSOCKET_FORMAT = RESOURCES["WebSocketStage"]["Properties"]["AccessLogSettings"]
SETTINGS = {"HttpApi": HTTP_FORMAT, "WebSocketStage": WEBSOCKET_FORMAT}
VARIABLE = re.compile(r"\$context\.[A-Za-z0-9_.]+")
# $context variables that could hold a token, a secret or a visitor's personal data: headers (Authorization), the
# query string (?token=, ?visitorToken=), the path and resource path, any request body or mapping, and a claim or
# authorizer value but the tenant id.
CARRIES_A_TOKEN = re.compile(r"(?i)header|querystring|query|path|\$input|body|token|claims\.(?!tenant_id$)")


def _as_json(fmt: str) -> dict[str, Any]:
    """The format as one log line: every $context variable replaced by a value API Gateway could put there."""
    line = VARIABLE.sub("value", fmt)
    assert "\n" not in line, "API Gateway writes one line per request"
    parsed: dict[str, Any] = json.loads(line)
    return parsed


@pytest.mark.parametrize("resource", sorted(SETTINGS))
def test_each_api_writes_json_lines_with_the_request_id(resource: str) -> None:
    fmt = SETTINGS[resource]["Format"]
    assert isinstance(fmt, str)
    fields = _as_json(fmt)
    assert '"requestId":"$context.requestId"' in fmt
    assert {"requestId", "extendedRequestId", "requestTime", "ip", "routeKey", "status", "tenantId"} <= set(fields)
    if resource == "WebSocketStage":
        assert {"connectionId", "eventType", "error"} <= set(fields)


@pytest.mark.parametrize("resource", sorted(SETTINGS))
def test_no_access_log_field_carries_a_token(resource: str) -> None:
    variables = VARIABLE.findall(SETTINGS[resource]["Format"])
    assert variables, "the format names no variable"
    assert [v for v in variables if CARRIES_A_TOKEN.search(v.removeprefix("$context."))] == []


def test_the_token_check_sees_what_it_must_refuse() -> None:
    # The check above would pass vacuously if it missed these: each one can carry a token.
    for name in ("path", "requestOverride.header.Authorization", "authorizer.claims.sub", "authorizer.token"):
        assert CARRIES_A_TOKEN.search(name), name
    assert not CARRIES_A_TOKEN.search("authorizer.claims.tenant_id")


@pytest.mark.parametrize(
    ("resource", "group"), [("HttpApi", "HttpApiAccessLogGroup"), ("WebSocketStage", "WebSocketAccessLogGroup")]
)
def test_each_api_logs_to_a_log_group_of_its_own_with_a_retention(resource: str, group: str) -> None:
    assert SETTINGS[resource]["DestinationArn"] == {"Fn::GetAtt": [group, "Arn"]}
    log_group = RESOURCES[group]
    assert log_group["Type"] == "AWS::Logs::LogGroup" and "Condition" not in log_group
    assert log_group["Properties"]["RetentionInDays"] == {"Fn::If": ["IsProd", 90, 14]}


@pytest.mark.parametrize("profile", ["default", "dev", "prod"])
def test_the_profiles_set_the_account_log_role_and_the_stage_waits_for_it(profile: str) -> None:
    values = parameter_values(**overrides_of(profile))
    assert condition("CreateApiGatewayLogRole", values)
    account = RESOURCES["ApiGatewayAccount"]
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    # a region-wide setting other APIs may come to use: kept, with its role, when the stack goes
    for name in ("ApiGatewayAccount", "ApiGatewayCloudWatchRole"):
        assert RESOURCES[name]["DeletionPolicy"] == RESOURCES[name]["UpdateReplacePolicy"] == "Retain"
    trust = RESOURCES["ApiGatewayCloudWatchRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    # the stage refers to the setting, so CloudFormation makes it first (API Gateway refuses the logs without it)
    tag = RESOURCES["WebSocketStage"]["Properties"]["Tags"]["LogRole"]
    assert tag == {"Fn::If": ["CreateApiGatewayLogRole", {"Ref": "ApiGatewayAccount"}, "existing"]}


def test_an_account_with_a_log_role_keeps_it() -> None:
    assert PARAMETERS["ApiGatewayLogRole"]["AllowedValues"] == ["create", "existing"]
    assert not condition("CreateApiGatewayLogRole", parameter_values(ApiGatewayLogRole="existing"))
