"""Contract: template.yaml and the code agree.

Every HttpApi route of a function is served by that function's Powertools resolver and every resolver
route is declared in the template; the sample events in events/ are real payload 2.0 events for
declared routes with valid bodies; the template keeps the shape ARCHITECTURE.md promises.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model
from pydantic import BaseModel

from local import sample_events
from local.template import REPO, HttpRoute, http_routes, load_module, load_template
from support.models.agents import AgentCreate, AgentStatusUpdate, AgentUpdate
from support.models.attachments import (
    AttachmentUploadRequest,
    VisitorAttachmentDownloadRequest,
    VisitorAttachmentUploadRequest,
)
from support.models.automations import RuleCreate, RuleUpdate
from support.models.canned import CannedResponseCreate, CannedResponseUpdate
from support.models.channels import ChannelCreate, ChannelMessage
from support.models.chat import ChatMessageCreate, ChatRating, ChatReadRequest, ChatSessionStart, ChatTransfer
from support.models.contacts import ContactMerge, ContactUpdate
from support.models.privacy import PrivacyRequestCreate
from support.models.settings import ChatSettings, EmailSettings, RetentionSettings, RoutingSettings, SlaSettings
from support.models.tickets import (
    AssignRequest,
    CallCreate,
    ChatTicketCreate,
    ConversationCreate,
    FeedbackCreate,
    TicketCreate,
    TicketUpdate,
)
from support.models.webhooks import WebhookCreate, WebhookUpdate
from support.models.widgets import WebFormTicketCreate, WidgetCreate, WidgetOriginsUpdate, WidgetSessionRequest

TEMPLATE = load_template()
ROUTES = http_routes()
ALL_EVENT_FILES = sorted((REPO / "events").rglob("*.json"))
# The HTTP API's samples; the WebSocket API's (events/websocket, events/ws_authorizer) are checked in
# test_websocket_template.py, the analytics job's (events/analytics) in test_analytics_template.py, the
# pre-token trigger's (events/pre_token) in tests/integration/test_pre_token.py, SES's receipt event
# (events/email) in tests/unit/test_email_in.py, the contacts backfill's (events/contacts_backfill) in
# tests/integration/test_contacts_api.py, the email outbox's (events/email_outbox) in
# tests/integration/test_email_outbox.py, the workflow sweep's (events/workflow_sweep) in
# tests/integration/test_workflow_sweep.py.
# The privacy job's (events/privacy_job) in tests/integration/test_privacy.py, the webhook delivery function's
# (events/webhook_delivery) in tests/integration/test_webhooks.py.
NOT_HTTP = (
    "websocket",
    "ws_authorizer",
    "analytics",
    "pre_token",
    "email",
    "contacts_backfill",
    "email_outbox",
    "privacy_job",
    "webhook_delivery",
)
EVENT_FILES = [p for p in ALL_EVENT_FILES if p.parent.name not in (*NOT_HTTP, "workflow_sweep")]

# What each route with a request body parses it into (the handler's model), to check the samples.
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "POST /api/support/tickets": TicketCreate,
    "PATCH /api/support/tickets/{ticketId}": TicketUpdate,
    "POST /api/support/tickets/{ticketId}/assign": AssignRequest,
    "POST /api/support/tickets/{ticketId}/conversations": ConversationCreate,
    "POST /api/support/tickets/{ticketId}/calls": CallCreate,
    "POST /api/support/tickets/{ticketId}/feedback": FeedbackCreate,
    "POST /api/support/agents": AgentCreate,
    "PATCH /api/support/agents/{agentId}": AgentUpdate,
    "PATCH /api/support/agents/{agentId}/status": AgentStatusUpdate,
    "POST /api/support/canned-responses": CannedResponseCreate,
    "PATCH /api/support/canned-responses/{responseId}": CannedResponseUpdate,
    "POST /api/support/chat/sessions": ChatSessionStart,
    "POST /api/support/chat/sessions/{sessionId}/transfer": ChatTransfer,
    "POST /api/support/chat/sessions/{sessionId}/rating": ChatRating,
    "POST /api/support/chat/sessions/{sessionId}/messages": ChatMessageCreate,
    "POST /api/support/chat/sessions/{sessionId}/read": ChatReadRequest,
    "POST /api/support/widgets": WidgetCreate,
    "PATCH /api/support/widgets/{widgetKey}": WidgetOriginsUpdate,
    "POST /api/support/widget/session": WidgetSessionRequest,
    "POST /api/support/widget/tickets": WebFormTicketCreate,
    "POST /api/support/attachments/upload-url": AttachmentUploadRequest,
    "POST /api/support/widget/attachments/upload-url": VisitorAttachmentUploadRequest,
    "POST /api/support/widget/attachments/{attachmentId}/download-url": VisitorAttachmentDownloadRequest,
    "PUT /api/support/settings/chat": ChatSettings,
    "PATCH /api/support/contacts/{contactId}": ContactUpdate,
    "POST /api/support/contacts/{contactId}/merge": ContactMerge,
    "PUT /api/support/settings/email": EmailSettings,
    "PUT /api/support/settings/sla": SlaSettings,
    "PUT /api/support/settings/routing": RoutingSettings,
    "PUT /api/support/settings/retention": RetentionSettings,
    "POST /api/support/channels": ChannelCreate,
    # read raw after its signature is checked (the handler takes no body parameter), as this model
    "POST /api/support/channels/{channelId}/messages": ChannelMessage,
    "POST /api/support/chat/sessions/{sessionId}/ticket": ChatTicketCreate,
    "POST /api/support/automations": RuleCreate,
    "PATCH /api/support/automations/{ruleId}": RuleUpdate,
    "POST /api/support/privacy/exports": PrivacyRequestCreate,
    "POST /api/support/privacy/erasures": PrivacyRequestCreate,
    "POST /api/support/webhooks": WebhookCreate,
    "PATCH /api/support/webhooks/{webhookId}": WebhookUpdate,
    # POST .../chat/sessions/{sessionId}/end takes an optional body that accepts nothing (ChatSessionEnd
    # refuses a client duration): its sample is sent without one.
}


def normalise(path: str) -> str:
    """Placeholder names differ by convention (`<ticket_id>` in Powertools, `{ticketId}` in the
    template), so compare shapes only."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path.rstrip("/") or "/")


def routes_by_function() -> dict[str, list[HttpRoute]]:
    grouped: dict[str, list[HttpRoute]] = defaultdict(list)
    for route in ROUTES:
        grouped[route.function_logical_id].append(route)
    return dict(grouped)


def resolver_of(route: HttpRoute) -> APIGatewayHttpResolver:
    module = load_module(route.code_uri, route.handler)
    resolver = getattr(module, "app", None)
    assert isinstance(resolver, APIGatewayHttpResolver), f"{module.__name__}.app is not an APIGatewayHttpResolver"
    return resolver


def served_routes(resolver: APIGatewayHttpResolver) -> set[tuple[str, str]]:
    # The resolver's registered routes (include_router() adds a Router's routes to these lists too).
    return {(r.method, normalise(r.path)) for r in [*resolver._static_routes, *resolver._dynamic_routes]}


def functions() -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in TEMPLATE["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def test_the_template_declares_http_routes() -> None:
    assert ROUTES, "template.yaml declares no HttpApi routes"
    keys = [route.route_key for route in ROUTES]
    assert len(keys) == len(set(keys)), "a route key is declared twice"


@pytest.mark.parametrize("function_id", sorted(routes_by_function()))
def test_template_routes_and_resolver_routes_are_the_same(function_id: str) -> None:
    # Given the HttpApi routes the template sends to one function
    routes = routes_by_function()[function_id]
    declared = {(route.method, normalise(route.path)) for route in routes}

    # When its handler module is imported
    served = served_routes(resolver_of(routes[0]))

    # Then the function serves exactly those routes
    assert declared - served == set(), f"{function_id}: declared in template.yaml but not served"
    assert served - declared == set(), f"{function_id}: served but not declared in template.yaml"


@pytest.mark.parametrize("function_id", sorted(functions()))
def test_every_function_has_explicit_routes(function_id: str) -> None:
    events = functions()[function_id]["Properties"].get("Events") or {}
    for event_id, event in events.items():
        if event["Type"] != "HttpApi":
            continue
        props = event.get("Properties") or {}
        assert props.get("Method"), f"{function_id}.{event_id}: no Method (an ANY catch-all)"
        assert props.get("Path"), f"{function_id}.{event_id}: no Path (the $default catch-all)"
        assert "+}" not in props["Path"], f"{function_id}.{event_id}: greedy path {props['Path']}"
        assert props["Method"].upper() != "ANY", f"{function_id}.{event_id}: ANY method"
        assert props.get("ApiId") == {"Ref": "HttpApi"}, f"{function_id}.{event_id}: not on the HttpApi"


def test_globals_give_every_function_the_runtime_and_the_layer() -> None:
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert {"Ref": "SupportLayer"} in function_globals["Layers"]
    variables = function_globals["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "support"
    assert "POWERTOOLS_METRICS_NAMESPACE" in variables
    # The statement timeout stays below the function timeout, so a slow query fails as a query.
    assert int(variables["DB_STATEMENT_TIMEOUT_MS"]) < function_globals["Timeout"] * 1000
    for function_id, function in functions().items():
        props = function["Properties"]
        assert "Runtime" not in props, f"{function_id} overrides the Globals runtime"
        assert "Layers" not in props, f"{function_id} replaces the Globals layers"


def test_the_layer_is_built_by_sam_for_the_runtime() -> None:
    layer = TEMPLATE["Resources"]["SupportLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    content = REPO / layer["Properties"]["ContentUri"]
    assert (content / "requirements.txt").is_file(), "sam build installs the layer's pinned requirements"
    assert (content / "support" / "__init__.py").is_file()


# The only routes without the JWT authorizer: the chat widget's, called from a merchant's page by a visitor
# who has no account (the handler checks the widget key and the browser's Origin instead).
PUBLIC_ROUTES = {
    "POST /api/support/widget/session",
    "POST /api/support/widget/tickets",
    # a connector's deliveries: an HMAC signature with the channel's secret instead of a JWT (sql/0030)
    "POST /api/support/channels/{channelId}/messages",
    # the API's OpenAPI document: no tenant's data (the stack's OpenApiUrl output)
    "GET /api/support/openapi.json",
    # the widget's attachments: the visitor's resume token and the key's Origin instead of a JWT (sql/0041)
    "POST /api/support/widget/attachments/upload-url",
    "POST /api/support/widget/attachments/{attachmentId}/download-url",
}


def test_the_http_api_requires_a_jwt_on_every_route_but_the_widgets_public_one() -> None:
    api = TEMPLATE["Resources"]["HttpApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "JwtAuthorizer"
    authorizer = api["Auth"]["Authorizers"]["JwtAuthorizer"]
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    # the stack's user pool and its app client (Cognito access tokens carry it as client_id), or the parameters
    assert authorizer["JwtConfiguration"]["issuer"] == {
        "Fn::If": ["CreateUserPool", {"Fn::Sub": "https://${UserPool.ProviderURL}"}, {"Ref": "JwtIssuer"}]
    }
    assert authorizer["JwtConfiguration"]["audience"] == {
        "Fn::If": ["CreateUserPool", [{"Ref": "UserPoolClient"}], {"Ref": "JwtAudience"}]
    }
    public = set()
    for function in functions().values():
        for event in (function["Properties"].get("Events") or {}).values():
            props = event.get("Properties") or {}
            if (props.get("Auth") or {}).get("Authorizer") == "NONE":
                public.add(f"{props['Method']} {props['Path']}")
    assert public == PUBLIC_ROUTES
    # and each public route has a throttle of its own, tighter than the API's default
    settings = api["RouteSettings"]
    assert set(settings) == PUBLIC_ROUTES
    default = api["DefaultRouteSettings"]
    for limits in settings.values():
        for name in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
            prod, dev = limits[name]["Fn::If"][1:]
            assert default[name]["Fn::If"][0] == limits[name]["Fn::If"][0] == "IsProd"
            assert prod < default[name]["Fn::If"][1] and dev < default[name]["Fn::If"][2], (name, limits)


# The API's database role: its generated secret, or the one with the proxy's host when RDS Proxy is on.
DATABASE_SECRET_POLICY = {
    "AWSSecretsManagerGetSecretValuePolicy": {
        "SecretArn": {"Fn::If": ["UseRdsProxy", {"Ref": "AppDbProxySecret"}, {"Ref": "AppDbSecret"}]}
    }
}
VISITOR_SECRET_POLICY = {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "VisitorTokenSecret"}}}
# Posting to this WebSocket API's connections of this stage, and nothing else.
MANAGE_CONNECTIONS_POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "execute-api:ManageConnections",
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}"
                "/${Stage}/*/@connections/*"
            },
        }
    ]
}
# Which functions may read the visitor token key: those that issue or check visitor tokens.
VISITOR_KEY_READERS = {"WidgetsFunction", "WebSocketAuthorizerFunction"}
# Which functions talk to WebSocket connections: the WebSocket function and the HTTP chat function (fan-out), and
# the widgets function (revoking a key closes its visitors' connections).
FAN_OUT = {"WebSocketFunction", "ChatFunction", "WidgetsFunction", "BroadcastFunction", "AutomationsFunction"}
# Which functions start staff broadcasts (support.services.broadcasts): they may invoke the broadcast function, and
# only it, and are told its name by configuration.
BROADCASTERS = {"WebSocketFunction", "ChatFunction", "AgentsFunction", "AutomationsFunction"}
# Which functions start automation runs after a change (support.services.automations): they may invoke the
# automations function, and are told its name by configuration.
AUTOMATION_STARTERS = {"TicketsFunction"}
INVOKE_AUTOMATIONS_POLICY = {"LambdaInvokePolicy": {"FunctionName": {"Ref": "AutomationsFunction"}}}
# Webhooks (sql/0042): the functions whose changes write deliveries start their dispatch after the commit; the
# sweep and the delivery function itself send to the queue (SAM's SQS event adds the poller's rights on its own).
WEBHOOK_STARTERS = {"TicketsFunction", "ChatFunction", "WidgetsFunction", "ChannelsFunction", "EmailInboundFunction"}
INVOKE_WEBHOOKS_POLICY = {"LambdaInvokePolicy": {"FunctionName": {"Ref": "WebhookDeliveryFunction"}}}
WEBHOOK_SENDERS = {"WorkflowSweepFunction", "WebhookDeliveryFunction"}
SEND_WEBHOOKS_POLICY = {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["WebhookDeliveryQueue", "QueueName"]}}}
# the delivery function's event source mapping: this queue only (not SAM's managed AWSLambdaSQSQueueExecutionRole)
RECEIVE_WEBHOOKS_POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            "Resource": {"Fn::GetAtt": ["WebhookDeliveryQueue", "Arn"]},
        }
    ]
}
INVOKE_BROADCAST_POLICY = {"LambdaInvokePolicy": {"FunctionName": {"Ref": "BroadcastFunction"}}}
# The broadcast function hands slices of a large audience to invocations of itself, named (not referenced: a
# function's policy that referenced the function would be a circular dependency).
INVOKE_ITSELF_POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
                "${AWS::StackName}-broadcast"
            },
        }
    ]
}


# The email outbox sends with SES as the stack's sender domain only (with one), through its configuration set.
SEND_AS_THE_SENDER_DOMAIN_POLICY = {
    "Fn::If": [
        "HasEmailSender",
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "ses:SendRawEmail",
                    "Resource": [
                        {
                            "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}"
                            ":identity/${EmailSenderDomain}"
                        },
                        {
                            "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}"
                            ":configuration-set/${EmailConfigurationSet}"
                        },
                    ],
                    "Condition": {"StringLike": {"ses:FromAddress": {"Fn::Sub": "*@${EmailSenderDomain}"}}},
                }
            ]
        },
        {"Ref": "AWS::NoValue"},
    ]
}


# Email in (sql/0028): the email function reads the raw mail SES stored under inbound/ and writes the files under
# attachments/; the tickets function reads the raw mail only (the original of a message, a presigned GET).
READ_INBOUND_MAIL = {
    "Effect": "Allow",
    "Action": "s3:GetObject",
    "Resource": {"Fn::Sub": "${InboundEmailBucket.Arn}/inbound/*"},
}
EMAIL_INBOUND_POLICY = {
    "Statement": [
        READ_INBOUND_MAIL,
        {
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": {"Fn::Sub": "${InboundEmailBucket.Arn}/attachments/*"},
        },
    ]
}
ORIGINAL_EMAIL_POLICY = {"Statement": [READ_INBOUND_MAIL]}
# The workflow sweep's retention step writes archive objects, and nothing else of the bucket.
WRITE_ARCHIVE_POLICY = {
    "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${ArchiveBucket.Arn}/archive/*"}}
    ]
}

# Privacy requests (sql/0039): the privacy function presigns an export's download and starts the job; the job writes
# and deletes exports, and deletes a customer's mail and files (every version) when it erases them; the workflow
# sweep starts the job again for a request whose run was lost.
INVOKE_PRIVACY_JOB_POLICY = {"LambdaInvokePolicy": {"FunctionName": {"Ref": "PrivacyJobFunction"}}}
PRIVACY_FUNCTION_POLICIES = [
    {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": {"Fn::Sub": "${PrivacyExportBucket.Arn}/exports/*"},
            }
        ]
    },
    INVOKE_PRIVACY_JOB_POLICY,
    # a done export's files, listed from its prefix
    {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": {"Fn::GetAtt": ["PrivacyExportBucket", "Arn"]},
                "Condition": {"StringLike": {"s3:prefix": "exports/*"}},
            }
        ]
    },
]
PRIVACY_JOB_POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": {"Fn::Sub": "${PrivacyExportBucket.Arn}/exports/*"},
        },
        {
            "Effect": "Allow",
            "Action": "s3:ListBucketVersions",
            "Resource": [{"Fn::GetAtt": ["PrivacyExportBucket", "Arn"]}, {"Fn::GetAtt": ["InboundEmailBucket", "Arn"]}],
        },
        {
            "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": [
                {"Fn::Sub": "${InboundEmailBucket.Arn}/inbound/*"},
                {"Fn::Sub": "${InboundEmailBucket.Arn}/attachments/*"},
            ],
        },
    ]
}
# Attachments (sql/0041): the functions that presign upload and download URLs may write incoming/ and read files/ (a
# presigned URL acts with its signer's rights); those that claim a message's files read incoming/ (HeadObject) and
# write and delete files/ (the kept copy).
PRESIGN_ATTACHMENTS_POLICY = {
    "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${AttachmentsBucket.Arn}/incoming/*"}},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${AttachmentsBucket.Arn}/files/*"}},
    ]
}
# The privacy job and the retention step delete the files of what they erase or delete (both S3 objects of each); the
# workflow sweep's `uploads` step, those of the uploads no message claimed.
DELETE_ATTACHMENTS_POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:DeleteObject",
            "Resource": [
                {"Fn::Sub": "${AttachmentsBucket.Arn}/files/*"},
                {"Fn::Sub": "${AttachmentsBucket.Arn}/incoming/*"},
            ],
        }
    ]
}
# A privacy export copies the customer's files server-side (CopyObject: read the source, write the export) and lists
# its own prefix to resume its copies.
EXPORT_FILES_POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [
                {"Fn::Sub": "${AttachmentsBucket.Arn}/files/*"},
                {"Fn::Sub": "${InboundEmailBucket.Arn}/inbound/*"},
                {"Fn::Sub": "${InboundEmailBucket.Arn}/attachments/*"},
            ],
        },
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": {"Fn::GetAtt": ["PrivacyExportBucket", "Arn"]},
            "Condition": {"StringLike": {"s3:prefix": "exports/*"}},
        },
    ]
}
CLAIM_ATTACHMENTS_POLICY = {
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${AttachmentsBucket.Arn}/incoming/*"}},
        {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": {"Fn::Sub": "${AttachmentsBucket.Arn}/files/*"},
        },
    ]
}


# The analytics rollup reads its own role's database secret, never the API's (test_analytics_template.py).
ANALYTICS_DATABASE_SECRET_POLICY = {
    "AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "AnalyticsDbSecret"}}
}
# The migrate function reads the master secret RDS manages and the two roles' secrets whose passwords it sets.
MIGRATE_POLICIES = [
    {
        "AWSSecretsManagerGetSecretValuePolicy": {
            "SecretArn": {"Fn::GetAtt": ["DbCluster", "MasterUserSecret.SecretArn"]}
        }
    },
    {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "AppDbSecret"}}},
    {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "AnalyticsDbSecret"}}},
]


def test_functions_get_no_policies_beyond_the_secrets_they_read_and_the_connections_they_post_to() -> None:
    for function_id, function in functions().items():
        if function_id == "MigrateFunction":
            continue  # TEMPORARY (wip-runtime): the deploy branch's MigrateFunction brings its own policies
        policies = function["Properties"].get("Policies", [])
        policies = policies if isinstance(policies, list) else [policies]
        if function_id == "MigrateFunction":
            assert policies == MIGRATE_POLICIES
            continue
        if function_id == "PreTokenFunction":  # no AWS API at all: only its logs (SAM's basic execution role)
            assert policies == []
            continue
        expected = [ANALYTICS_DATABASE_SECRET_POLICY if function_id == "AnalyticsFunction" else DATABASE_SECRET_POLICY]
        if function_id in VISITOR_KEY_READERS:
            expected = [VISITOR_SECRET_POLICY, *expected]
        if function_id in FAN_OUT:
            expected = [MANAGE_CONNECTIONS_POLICY, *expected]
        if function_id in BROADCASTERS:
            expected = [*expected, INVOKE_BROADCAST_POLICY]
        if function_id == "BroadcastFunction":
            expected = [*expected, INVOKE_ITSELF_POLICY]
        if function_id == "EmailOutboxFunction":
            expected = [*expected, SEND_AS_THE_SENDER_DOMAIN_POLICY]
        if function_id == "EmailInboundFunction":
            expected = [*expected, EMAIL_INBOUND_POLICY]
        if function_id == "TicketsFunction":
            expected = [*expected, ORIGINAL_EMAIL_POLICY, CLAIM_ATTACHMENTS_POLICY]
        if function_id in AUTOMATION_STARTERS:
            expected = [*expected, INVOKE_AUTOMATIONS_POLICY]
        if function_id == "PrivacyFunction":
            expected = [*expected, *PRIVACY_FUNCTION_POLICIES]
        if function_id == "PrivacyJobFunction":
            expected = [*expected, PRIVACY_JOB_POLICY, DELETE_ATTACHMENTS_POLICY, EXPORT_FILES_POLICY]
        if function_id == "WorkflowSweepFunction":
            expected = [*expected, INVOKE_PRIVACY_JOB_POLICY]
        if function_id in WEBHOOK_STARTERS:
            expected = [*expected, INVOKE_WEBHOOKS_POLICY]
        if function_id in WEBHOOK_SENDERS:
            expected = [*expected, SEND_WEBHOOKS_POLICY]
        if function_id == "WorkflowSweepFunction":
            expected = [*expected, WRITE_ARCHIVE_POLICY, DELETE_ATTACHMENTS_POLICY]
        if function_id == "WebhookDeliveryFunction":
            expected = [*expected, RECEIVE_WEBHOOKS_POLICY]
        if function_id in {"ChatFunction", "WebSocketFunction"}:
            expected = [*expected, CLAIM_ATTACHMENTS_POLICY]
        if function_id in {"WidgetsFunction", "AttachmentsFunction"}:
            expected = [*expected, PRESIGN_ATTACHMENTS_POLICY]
        assert policies == expected, f"{function_id} has policies beyond what it needs"
        variables = (function["Properties"].get("Environment") or {}).get("Variables") or {}
        assert ("VISITOR_TOKEN_SECRET_ARN" in variables) == (function_id in VISITOR_KEY_READERS), function_id
        # the management endpoint reaches the code through configuration, never hard-coded
        assert ("WEBSOCKET_MANAGEMENT_ENDPOINT" in variables) == (function_id in FAN_OUT), function_id
        assert ("BROADCAST_FUNCTION_NAME" in variables) == (function_id in BROADCASTERS), function_id
        if function_id in BROADCASTERS:
            assert variables["BROADCAST_FUNCTION_NAME"] == {"Ref": "BroadcastFunction"}
        assert ("AUTOMATIONS_FUNCTION_NAME" in variables) == (function_id in AUTOMATION_STARTERS), function_id
        assert ("WEBHOOK_FUNCTION_NAME" in variables) == (function_id in WEBHOOK_STARTERS), function_id
        assert ("WEBHOOK_QUEUE_URL" in variables) == (function_id in WEBHOOK_SENDERS), function_id


def test_the_attachments_lifecycle_expires_uploads_after_the_day_the_uploads_step_counts() -> None:
    """The bucket expires unclaimed uploads under incoming/ after attachments.INCOMING_LIFETIME, the day the workflow
    sweep's `uploads` step waits (with its margin) before it deletes their rows: one figure in two places."""
    from datetime import timedelta

    from support.services import attachments

    rules = TEMPLATE["Resources"]["AttachmentsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    [expiry] = [rule for rule in rules if rule["Id"] == "ExpireUnclaimedUploads"]
    assert expiry["Prefix"] == attachments.INCOMING_PREFIX
    assert timedelta(days=expiry["ExpirationInDays"]) == attachments.INCOMING_LIFETIME
    assert attachments.UNCLAIMED_AFTER > attachments.INCOMING_LIFETIME


def test_there_is_a_sample_event_for_every_route() -> None:
    covered = {json.loads(path.read_text())["routeKey"] for path in EVENT_FILES}
    assert {route.route_key for route in ROUTES} - covered == set()


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: str(p.relative_to(REPO / "events")))
def test_sample_event_is_a_payload_2_event_for_a_declared_route(path: Path) -> None:
    # Given a sample event as `sam local invoke -e` would read it
    event = json.loads(path.read_text())

    # When it is parsed as API Gateway's HTTP API payload format 2.0
    parsed = APIGatewayProxyEventV2Model.model_validate(event)

    # Then it names a declared route, and its path, parameters and claims are consistent with it
    routes = {route.route_key: route for route in ROUTES}
    assert parsed.version == "2.0"
    assert parsed.routeKey in routes, f"{parsed.routeKey} is not in template.yaml"
    assert parsed.requestContext.routeKey == parsed.routeKey
    route = routes[parsed.routeKey]
    assert parsed.requestContext.http.method == route.method
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.path))
    found = re.fullmatch(pattern, parsed.rawPath)
    assert found, f"{parsed.rawPath} does not match {route.path}"
    assert (parsed.pathParameters or {}) == found.groupdict()
    if route.public:  # no authorizer ran: no claims, no Authorization; the browser's Origin
        assert parsed.requestContext.authorizer is None
        assert "authorization" not in event["headers"]
        if parsed.routeKey == "POST /api/support/channels/{channelId}/messages":  # a connector: its signature
            assert event["headers"]["x-signature"].startswith("v1=") and event["headers"]["x-signature-timestamp"]
        else:
            assert event["headers"]["origin"]
    else:
        assert parsed.requestContext.authorizer is not None and parsed.requestContext.authorizer.jwt is not None
        claims = parsed.requestContext.authorizer.jwt.claims
        assert claims["tenant_id"] == sample_events.TENANT_ID
        assert claims["role"] == "admin"
        assert claims["sub"]
        assert all(isinstance(value, str) for value in claims.values()), "API Gateway passes claims as strings"

    # And its body, if the route takes one, is valid for the route's request model
    model = REQUEST_MODELS.get(parsed.routeKey)
    if model is not None:
        assert isinstance(event.get("body"), str) and not parsed.isBase64Encoded
        model.model_validate_json(event["body"])
    else:
        assert "body" not in event


def test_sample_events_are_up_to_date() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path, content in sample_events.rendered().items()
        if not path.is_file() or path.read_text() != content
    ]
    assert stale == [], "run `python -m local.sample_events` and commit the result"
    assert set(sample_events.rendered()) == set(ALL_EVENT_FILES), "events/ holds files the generator does not make"
