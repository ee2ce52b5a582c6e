"""The WebSocket API of template.yaml against the WebSocket function: every route has an action, every action a
route; every message route is two-way (its answer is the route's response), $connect and $disconnect are not;
the authorizer guards $connect; permissions are scoped to this API; the deployment waits for every route."""

from __future__ import annotations

import json
from typing import Any

from local.template import TEMPLATE, load_module, load_template, websocket_api

RESOURCES: dict[str, Any] = load_template(TEMPLATE)["Resources"]


def _of_type(kind: str) -> dict[str, Any]:
    return {name: r for name, r in RESOURCES.items() if r.get("Type") == kind}


ROUTES = {
    r["Properties"]["RouteKey"]: (name, r["Properties"]) for name, r in _of_type("AWS::ApiGatewayV2::Route").items()
}


def test_the_api_routes_by_the_action_field() -> None:
    (api,) = _of_type("AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"


def test_every_route_has_an_action_and_every_action_a_route() -> None:
    websocket = RESOURCES["WebSocketFunction"]["Properties"]
    module = load_module(websocket["CodeUri"], websocket["Handler"])
    assert set(ROUTES) - {"$connect", "$disconnect", "$default"} == set(module.ACTIONS)


def _answering_actions() -> set[str]:
    """The actions whose answer the handler returns as the route's response (typing's is posted: it is one-way)."""
    websocket = RESOURCES["WebSocketFunction"]["Properties"]
    actions = load_module(websocket["CodeUri"], websocket["Handler"]).ACTIONS
    return {name for name, action in actions.items() if action.answers}


def test_every_message_route_answers_its_caller_by_a_route_response_and_connect_disconnect_do_not() -> None:
    # The handler answers every message (an action, or an error for anything else, on $default) in its result's
    # body (support.websocket): API Gateway sends that body only on a route with a route response.
    responses = {
        r["Properties"]["RouteId"]["Ref"]: r["Properties"]
        for r in _of_type("AWS::ApiGatewayV2::RouteResponse").values()
    }
    two_way = set()
    for key, (name, props) in ROUTES.items():
        if name in responses:
            assert responses[name] == {
                "ApiId": {"Ref": "WebSocketApi"},
                "RouteId": {"Ref": name},
                "RouteResponseKey": "$default",
            }
            assert props["RouteResponseSelectionExpression"] == "$default", key
            two_way.add(key)
        else:
            assert "RouteResponseSelectionExpression" not in props, key
    assert two_way == _answering_actions() | {"$default"}
    assert "typing" not in two_way  # answers nothing: a route response would send an empty message per notice
    assert len(responses) == len(two_way)  # one route response per route, and none of another route
    # and the local gateway reads the same from the template: it sends the body exactly on these routes
    parsed = websocket_api(TEMPLATE)
    assert {route.route_key for route in parsed.routes if route.two_way} == two_way
    assert {route.route_key for route in parsed.routes if not route.two_way} == {"$connect", "$disconnect", "typing"}


def test_only_connect_is_authorized_and_by_the_lambda_authorizer() -> None:
    for key, (_, props) in ROUTES.items():
        assert props["Target"] == {"Fn::Sub": "integrations/${WebSocketIntegration}"}, key
        if key == "$connect":
            assert props["AuthorizationType"] == "CUSTOM"
            assert props["AuthorizerId"] == {"Ref": "WebSocketAuthorizer"}
        else:
            assert "AuthorizationType" not in props, key  # API Gateway authorizes a connection once, on $connect
    authorizer = RESOURCES["WebSocketAuthorizer"]["Properties"]
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert "WebSocketAuthorizerFunction.Arn" in authorizer["AuthorizerUri"]["Fn::Sub"]


def test_lambda_permissions_are_scoped_to_this_api() -> None:
    permissions = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in _of_type("AWS::Lambda::Permission").values()
        if r["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }
    assert set(permissions) == {"WebSocketFunction", "WebSocketAuthorizerFunction"}
    assert permissions["WebSocketFunction"]["SourceArn"]["Fn::Sub"].endswith(":${WebSocketApi}/${Stage}/*")
    assert permissions["WebSocketAuthorizerFunction"]["SourceArn"]["Fn::Sub"].endswith(
        ":${WebSocketApi}/authorizers/${WebSocketAuthorizer}"
    )
    # and the others are Cognito's, for the stack's own user pool only, and SES's, for the stack's receipt rule only
    others = [r["Properties"] for r in _of_type("AWS::Lambda::Permission").values() if r not in permissions.values()]
    others = [p for p in others if p["Principal"] != "apigateway.amazonaws.com"]
    assert others == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": "PreTokenFunction"},
            "Principal": "cognito-idp.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": ["UserPool", "Arn"]},
        },
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": "EmailInboundFunction"},
            "Principal": "ses.amazonaws.com",
            "SourceAccount": {"Ref": "AWS::AccountId"},
            "SourceArn": {
                "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}"
                ":receipt-rule-set/${InboundEmailRuleSet}:receipt-rule/desk-inbound"
            },
        },
    ]


def test_the_deployment_depends_on_every_route_and_route_response_and_the_stage_uses_it() -> None:
    deployment = RESOURCES["WebSocketDeployment"]
    responses = set(_of_type("AWS::ApiGatewayV2::RouteResponse"))
    assert set(deployment["DependsOn"]) == {name for name, _ in ROUTES.values()} | responses
    stage = RESOURCES["WebSocketStage"]["Properties"]
    assert stage["DeploymentId"] == {"Ref": "WebSocketDeployment"}
    assert stage["StageName"] == {"Ref": "Stage"}


EVENTS = TEMPLATE.parent / "events"


def test_there_is_a_sample_event_for_every_websocket_route_and_the_authorizer() -> None:
    events = {path.stem: json.loads(path.read_text()) for path in (EVENTS / "websocket").glob("*.json")}
    assert {e["requestContext"]["routeKey"] for e in events.values()} == set(ROUTES)
    for name, sample in events.items():
        context = sample["requestContext"]
        assert context["eventType"] == {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(
            context["routeKey"], "MESSAGE"
        ), name
        assert context["authorizer"]["tenantId"] and context["connectionId"], name
        if context["eventType"] == "MESSAGE":
            body = json.loads(sample["body"])
            assert body["action"] == context["routeKey"] or context["routeKey"] == "$default", name
    (authorizer,) = (json.loads(p.read_text()) for p in (EVENTS / "ws_authorizer").glob("*.json"))
    assert authorizer["type"] == "REQUEST"
    assert authorizer["methodArn"].endswith("/$connect")
    assert "visitorToken" in authorizer["queryStringParameters"]
