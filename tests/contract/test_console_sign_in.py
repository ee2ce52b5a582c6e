"""The agent console's hosted sign-in in template.yaml (ConsoleUrl): a Cognito domain and the app client's OAuth
settings, checked against what the console sends (web/console/js/auth.js) and reads (web/console/js/app.js), with
the deploy template tests' evaluator of conditions and rules; and nothing of it without a console URL."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local.template import REPO
from tests.contract.test_deploy_template import (
    PARAMETERS,
    RESOURCES,
    TEMPLATE,
    broken_rules,
    condition,
    overrides_of,
    parameter_values,
)

CONSOLE_URL = "https://console.example.com/"
AUTH_JS = (REPO / "web/console/js/auth.js").read_text()
APP_JS = (REPO / "web/console/js/app.js").read_text()
OAUTH_PROPERTIES = {
    "AllowedOAuthFlowsUserPoolClient",
    "AllowedOAuthFlows",
    "AllowedOAuthScopes",
    "SupportedIdentityProviders",
    "CallbackURLs",
    "LogoutURLs",
}


def resolved(node: Any, values: dict[str, Any]) -> Any:
    """A property tree as CloudFormation sees it for these parameters: Fn::If chosen, AWS::NoValue dropped, Refs
    to parameters replaced (Refs to resources and other functions are kept as they are)."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return resolved(yes if condition(name, values) else no, values)
        if set(node) == {"Ref"} and node["Ref"] in PARAMETERS:
            return values[node["Ref"]]
        out = {k: resolved(v, values) for k, v in node.items()}
        return {k: v for k, v in out.items() if v != {"Ref": "AWS::NoValue"}}
    if isinstance(node, list):
        return [resolved(item, values) for item in node if item != {"Ref": "AWS::NoValue"}]
    return node


def made(values: dict[str, Any]) -> set[str]:
    return {k for k, v in RESOURCES.items() if "Condition" not in v or condition(v["Condition"], values)}


def outputs(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in TEMPLATE["Outputs"].items() if "Condition" not in v or condition(v["Condition"], values)}


def substituted(text: str, names: dict[str, str]) -> str:
    """An Fn::Sub string with each ${Name} (or ${Name.Attr}) replaced; fails on one not given."""

    def one(match: re.Match[str]) -> str:
        assert match.group(1) in names, f"unexpected ${{{match.group(1)}}}"
        return names[match.group(1)]

    return re.sub(r"\$\{([^}]+)\}", one, text)


STACK = {
    "HttpApi": "abc123",
    "WebSocketApi": "def456",
    "AWS::Region": "eu-west-1",
    "AWS::URLSuffix": "amazonaws.com",
    "Stage": "dev",
    "UserPoolDomain": "support-dev-123456789012",
    "UserPoolClient": "4client5id",
    "ConsoleUrl": CONSOLE_URL,
}


# --- with a console URL --------------------------------------------------------------------------------------------


def test_a_console_url_gives_the_stacks_user_pool_a_domain() -> None:
    values = parameter_values(ConsoleUrl=CONSOLE_URL)
    assert broken_rules(values) == [] and condition("HostedSignIn", values)
    assert "UserPoolDomain" in made(values)
    domain = resolved(RESOURCES["UserPoolDomain"]["Properties"], values)
    assert domain["UserPoolId"] == {"Ref": "UserPool"}
    # no prefix given: one derived from the stage and the account, which the prefix's own pattern accepts
    derived = domain["Domain"]["Fn::Sub"]
    assert derived == "support-${Stage}-${AWS::AccountId}"
    prefix = substituted(derived, {"Stage": "prod", "AWS::AccountId": "123456789012"})
    assert re.fullmatch(PARAMETERS["SignInDomainPrefix"]["AllowedPattern"], prefix)
    given = parameter_values(ConsoleUrl=CONSOLE_URL, SignInDomainPrefix="acme-desk")
    assert resolved(RESOURCES["UserPoolDomain"]["Properties"], given)["Domain"] == "acme-desk"


def test_the_app_client_allows_what_the_console_sends() -> None:
    values = parameter_values(ConsoleUrl=CONSOLE_URL)
    client = resolved(RESOURCES["UserPoolClient"]["Properties"], values)
    assert set(client) >= OAUTH_PROPERTIES
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    # the console asks for a code with a PKCE challenge and a state (the authorization code grant), never a token
    assert re.search(r'searchParams\.set\("response_type", "code"\)', AUTH_JS)
    assert re.search(r'searchParams\.set\("code_challenge_method", "S256"\)', AUTH_JS)
    assert re.search(r'searchParams\.set\("state", pending\.state\)', AUTH_JS)
    assert '"response_type", "token"' not in AUTH_JS
    # and on return takes the code only with the state this tab sent, trading it with the verifier
    assert "state !== pending.state" in AUTH_JS and "code_verifier: pending.verifier" in AUTH_JS
    assert 'grant_type: "authorization_code"' in AUTH_JS
    assert client["AllowedOAuthFlows"] == ["code"]
    assert "GenerateSecret" in RESOURCES["UserPoolClient"]["Properties"]  # a public client: the browser holds no secret
    assert RESOURCES["UserPoolClient"]["Properties"]["GenerateSecret"] is False
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert client["CallbackURLs"] == client["LogoutURLs"] == [CONSOLE_URL]
    # the config the stack prints is the one the console reads; the scopes it asks for are allowed
    config = json.loads(substituted(outputs(values)["ConsoleConfig"]["Value"]["Fn::Sub"], STACK))
    assert set(config) == {"apiBaseUrl", "websocketUrl", "hostedSignIn"}
    for key in ("apiBaseUrl", "websocketUrl", "hostedSignIn"):
        assert f"config.{key}" in APP_JS, key
    hosted = config["hostedSignIn"]
    for key in ("authorizeUrl", "tokenUrl", "clientId", "scope", "redirectUri"):
        assert f"hosted.{key}" in AUTH_JS, key
    assert set(hosted["scope"].split()) <= set(client["AllowedOAuthScopes"]) == {"openid", "email", "profile"}
    assert hosted["redirectUri"] in client["CallbackURLs"]  # what the console sends as redirect_uri
    assert hosted["clientId"] == STACK["UserPoolClient"]
    authorize = substituted(outputs(values)["HostedSignInAuthorizeUrl"]["Value"]["Fn::Sub"], STACK)
    assert hosted["authorizeUrl"] == authorize
    assert authorize == "https://support-dev-123456789012.auth.eu-west-1.amazoncognito.com/oauth2/authorize"
    # the token endpoint of the same domain, where the console trades the code
    assert hosted["tokenUrl"] == "https://support-dev-123456789012.auth.eu-west-1.amazoncognito.com/oauth2/token"
    assert config["apiBaseUrl"] == substituted(TEMPLATE["Outputs"]["HttpApiUrl"]["Value"]["Fn::Sub"], STACK)
    assert config["websocketUrl"] == substituted(TEMPLATE["Outputs"]["WebSocketUrl"]["Value"]["Fn::Sub"], STACK)


def test_the_hosted_sign_in_is_for_the_stacks_own_user_pool_only() -> None:
    values = parameter_values(ConsoleUrl=CONSOLE_URL, JwtIssuer="https://issuer.example/", JwtAudience="api")
    assert broken_rules(values) == ["HostedSignInNeedsTheStacksUserPool"]
    assert not condition("HostedSignIn", values)
    assert "UserPoolDomain" not in made(values) and "ConsoleConfig" not in outputs(values)


# --- without one (the samconfig profiles) --------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["default", "dev", "prod"])
def test_the_profiles_make_no_hosted_sign_in(profile: str) -> None:
    values = parameter_values(**overrides_of(profile))
    assert values["ConsoleUrl"] == "" and condition("CreateUserPool", values)
    assert not condition("HostedSignIn", values)
    assert "UserPoolDomain" not in made(values) and "UserPoolClient" in made(values)
    client = resolved(RESOURCES["UserPoolClient"]["Properties"], values)
    assert not OAUTH_PROPERTIES & set(client)  # no OAuth flows, no callback: only the SDK sign-in of docs/deploying.md
    assert not {"HostedSignInAuthorizeUrl", "ConsoleConfig"} & set(outputs(values))


# --- the parameters' patterns (CloudFormation's AllowedPattern must match the whole value) ------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("", True),
        ("https://console.example.com", True),
        ("https://console.example.com/", True),
        ("https://desk.example.com:8443/console/", True),
        ("http://localhost:8080", True),
        ("http://localhost:8080/console/index.html", True),
        ("http://example.com", False),
        ("http://localhost.example.com", False),
        ("ftp://console.example.com", False),
        ("https://console.example.com/#token", False),
        ("https://console.example.com/?next=1", False),
        ("https://console example.com", False),
    ],
)
def test_the_console_url_is_https_or_localhost(url: str, allowed: bool) -> None:
    assert bool(re.fullmatch(PARAMETERS["ConsoleUrl"]["AllowedPattern"], url)) is allowed


@pytest.mark.parametrize(
    ("prefix", "allowed"),
    [
        ("", True),
        ("acme-desk", True),
        ("support-prod-123456789012", True),
        ("Acme", False),
        ("acme_desk", False),
        ("-acme", False),
        ("acme-", False),
        ("my-aws-desk", False),
        ("amazon-desk", False),
        ("desk-cognito", False),
        ("a" * 64, False),
    ],
)
def test_the_domain_prefix_is_what_cognito_accepts(prefix: str, allowed: bool) -> None:
    assert bool(re.fullmatch(PARAMETERS["SignInDomainPrefix"]["AllowedPattern"], prefix)) is allowed
