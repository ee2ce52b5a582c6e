"""The deployable stack in template.yaml: parameters and the conditions they drive (evaluated here for the
profiles a user deploys), the network and its security groups, Aurora, the secrets, RDS Proxy, Cognito, the
migrate custom resource, log groups, alarms, outputs, and samconfig.toml's profiles."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import pytest

from local.template import REPO, load_template

TEMPLATE = load_template()
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
CONDITIONS: dict[str, Any] = TEMPLATE["Conditions"]
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
SAMCONFIG = tomllib.loads((REPO / "samconfig.toml").read_text())
FUNCTIONS = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
# Every function but the pre-token trigger (Cognito's, no database) uses PostgreSQL.
DATABASE_FUNCTIONS = set(FUNCTIONS) - {"PreTokenFunction"}
API_FUNCTIONS = {
    "TicketsFunction",
    "AgentsFunction",
    "CannedResponsesFunction",
    "ChatFunction",
    "DashboardFunction",
    "WidgetsFunction",
    "SettingsFunction",
    "ContactsFunction",
    "WebSocketFunction",
    "WebSocketAuthorizerFunction",
}


# --- a small evaluator of the template's conditions and rules, for given parameter values -------------------------


def _value(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            return values[arg]
        if key == "Condition":
            return condition(arg, values)
        if key == "Fn::Equals":
            left, right = (_value(a, values) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not _value(arg[0], values)
        if key == "Fn::And":
            return all(_value(a, values) for a in arg)
        if key == "Fn::Or":
            return any(_value(a, values) for a in arg)
        if key == "Fn::Contains":
            return _value(arg[1], values) in _value(arg[0], values)
        if key == "Fn::EachMemberEquals":
            return all(item == _value(arg[1], values) for item in _value(arg[0], values))
        raise AssertionError(f"the evaluator does not know {key}")
    return node


def parameter_values(**overrides: str) -> dict[str, Any]:
    """The parameters as CloudFormation hands them to conditions: defaults, then overrides; lists split."""
    values: dict[str, Any] = {}
    for name, parameter in PARAMETERS.items():
        raw = str(overrides.get(name, parameter.get("Default", "")))
        values[name] = [item.strip() for item in raw.split(",")] if parameter["Type"] == "CommaDelimitedList" else raw
    return values


def condition(name: str, values: Mapping[str, Any]) -> bool:
    return bool(_value(CONDITIONS[name], values))


def broken_rules(values: Mapping[str, Any]) -> list[str]:
    broken = []
    for name, rule in TEMPLATE["Rules"].items():
        if "RuleCondition" in rule and not _value(rule["RuleCondition"], values):
            continue
        if not all(_value(assertion["Assert"], values) for assertion in rule["Assertions"]):
            broken.append(name)
    return broken


def overrides_of(profile: str) -> dict[str, str]:
    text = SAMCONFIG[profile]["deploy"]["parameters"]["parameter_overrides"]
    return dict(pair.split("=", 1) for pair in text.split())


# --- parameters and conditions -------------------------------------------------------------------------------------


def test_the_stack_owns_its_database_no_external_url_or_secret_parameters() -> None:
    assert not {"DatabaseUrl", "DatabaseSecretArn", "AnalyticsDatabaseUrl", "AnalyticsDatabaseSecretArn"} & set(
        PARAMETERS
    )
    text = (REPO / "template.yaml").read_text()
    assert "DATABASE_URL" not in text  # the functions read secrets the stack made, never a URL in configuration


def test_the_defaults_make_a_whole_dev_stack() -> None:
    values = parameter_values()
    assert broken_rules(values) == []
    assert condition("CreateVpc", values)
    assert condition("CreateUserPool", values)  # no issuer given: the stack's own user pool
    assert condition("AutoPause", values) and not condition("UseRdsProxy", values)
    assert not condition("ReserveConcurrency", values) and not condition("IsProd", values)
    # Aurora's default major is the local database's (local/database.py starts PostgreSQL 16)
    assert PARAMETERS["DbEngineVersion"]["Default"].split(".")[0] == "16"
    assert "PostgreSQL 16" in (REPO / "local" / "database.py").read_text()


def test_an_existing_vpc_is_an_option() -> None:
    existing = parameter_values(VpcId="vpc-0123456789abcdef0", PrivateSubnetIds="subnet-0aa,subnet-0bb")
    assert broken_rules(existing) == []
    assert not condition("CreateVpc", existing)  # no VPC, no NAT gateway: an existing VPC brings its own way out
    # the subnet pattern accepts what the rule needs and refuses a single subnet
    pattern = PARAMETERS["PrivateSubnetIds"]["AllowedPattern"]
    assert re.fullmatch(pattern, "subnet-0aa,subnet-0bb") and re.fullmatch(pattern, "")
    assert not re.fullmatch(pattern, "subnet-0aa")


def test_the_functions_way_out_is_a_nat_gateway_not_interface_endpoints() -> None:
    # An execute-api interface endpoint serves private REST APIs only; with its private DNS every call to this
    # stack's (public) WebSocket management API from the VPC would be a 403. So no endpoints at all.
    assert not [k for k, v in RESOURCES.items() if v["Type"] == "AWS::EC2::VPCEndpoint"]
    route = RESOURCES["PrivateDefaultRoute"]["Properties"]
    assert route == {
        "RouteTableId": {"Ref": "PrivateRouteTable"},
        "DestinationCidrBlock": "0.0.0.0/0",
        "NatGatewayId": {"Ref": "NatGateway"},
    }
    assert RESOURCES["NatGateway"]["Properties"]["SubnetId"] == {"Ref": "PublicSubnet"}


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"VpcId": "vpc-0123456789abcdef0"}, "ExistingVpcHasSubnets"),
        ({"PrivateSubnetIds": "subnet-0aa,subnet-0bb"}, "SubnetsBelongToAGivenVpc"),
        ({"JwtIssuer": "https://issuer.example/"}, "ExternalIssuerHasAnAudience"),
        ({"EnableRdsProxy": "true"}, "RdsProxyNeedsARunningDatabase"),
    ],
)
def test_inconsistent_parameters_are_refused_before_anything_is_made(overrides: dict[str, str], rule: str) -> None:
    assert broken_rules(parameter_values(**overrides)) == [rule]


def test_an_external_issuer_replaces_the_user_pool() -> None:
    values = parameter_values(JwtIssuer="https://issuer.example/", JwtAudience="support-api")
    assert broken_rules(values) == [] and not condition("CreateUserPool", values)
    cognito = {k for k, v in RESOURCES.items() if v["Type"].startswith("AWS::Cognito::")}
    assert cognito == {"UserPool", "UserPoolClient", "UserPoolDomain"}
    for name in ["UserPool", "UserPoolClient", "PreTokenFunction", "PreTokenPermission", "PreTokenFunctionLogGroup"]:
        assert RESOURCES[name]["Condition"] == "CreateUserPool", name
    # the hosted sign-in's domain (tests/contract/test_console_sign_in.py) needs the stack's own pool as well
    assert RESOURCES["UserPoolDomain"]["Condition"] == "HostedSignIn"
    assert not condition("HostedSignIn", {**values, "ConsoleUrl": "https://console.example.com/"})


CONDITIONAL = {
    "CreateApiGatewayLogRole": {"ApiGatewayCloudWatchRole", "ApiGatewayAccount"},
    "AdminMfaRequired": {"PreTokenReadsUsers"},
    "CreateVpc": {
        "Vpc",
        "PrivateSubnetA",
        "PrivateSubnetB",
        "PrivateRouteTable",
        "PrivateSubnetARouteTable",
        "PrivateSubnetBRouteTable",
        "PublicSubnet",
        "InternetGateway",
        "InternetGatewayAttachment",
        "PublicRouteTable",
        "PublicDefaultRoute",
        "PublicSubnetRouteTable",
        "NatGatewayAddress",
        "NatGateway",
        "PrivateDefaultRoute",
    },
    "UseRdsProxy": {
        "DbProxyRole",
        "DbProxy",
        "DbProxyTargetGroup",
        "AppDbProxySecret",
        "ProxySecurityGroup",
        "FunctionToProxyEgress",
        "DatabaseFromProxyIngress",
    },
}


@pytest.mark.parametrize("name", sorted(CONDITIONAL))
def test_optional_resources_exist_only_under_their_condition(name: str) -> None:
    made = {k for k, v in RESOURCES.items() if v.get("Condition") == name}
    assert made == CONDITIONAL[name]


def test_the_two_private_subnets_are_in_two_availability_zones() -> None:
    zones = [RESOURCES[s]["Properties"]["AvailabilityZone"] for s in ("PrivateSubnetA", "PrivateSubnetB")]
    assert zones == [{"Fn::Select": [0, {"Fn::GetAZs": ""}]}, {"Fn::Select": [1, {"Fn::GetAZs": ""}]}]
    for subnet in ("PrivateSubnetA", "PrivateSubnetB"):
        assert "MapPublicIpOnLaunch" not in RESOURCES[subnet]["Properties"]


# --- security groups -----------------------------------------------------------------------------------------------


def _rules(kind: str) -> list[dict[str, Any]]:
    return [v["Properties"] for v in RESOURCES.values() if v["Type"] == kind]


def test_only_the_functions_and_the_proxy_reach_the_database() -> None:
    database = RESOURCES["DatabaseSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in database  # its ingress rules are the separate resources below
    ingress = [r for r in _rules("AWS::EC2::SecurityGroupIngress") if r["GroupId"] == {"Ref": "DatabaseSecurityGroup"}]
    assert sorted(r["SourceSecurityGroupId"]["Ref"] for r in ingress) == ["FunctionSecurityGroup", "ProxySecurityGroup"]
    for rule in ingress:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 5432, 5432)
        assert "CidrIp" not in rule
    # and no group anywhere lets an address range in
    for group in _rules("AWS::EC2::SecurityGroup"):
        for rule in group.get("SecurityGroupIngress", []):
            assert "CidrIp" not in rule and "SourceSecurityGroupId" in rule, group["GroupDescription"]


def test_the_functions_go_out_only_to_https_and_postgresql() -> None:
    egress = RESOURCES["FunctionSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert [(r["FromPort"], r["ToPort"], r["CidrIp"]) for r in egress] == [(443, 443, "0.0.0.0/0")]
    to_database = [
        r for r in _rules("AWS::EC2::SecurityGroupEgress") if r["GroupId"] == {"Ref": "FunctionSecurityGroup"}
    ]
    assert sorted(r["DestinationSecurityGroupId"]["Ref"] for r in to_database) == [
        "DatabaseSecurityGroup",
        "ProxySecurityGroup",
    ]
    assert all((r["FromPort"], r["ToPort"]) == (5432, 5432) for r in to_database)


@pytest.mark.parametrize("function_id", sorted(DATABASE_FUNCTIONS))
def test_every_database_function_runs_in_the_private_subnets(function_id: str) -> None:
    props = FUNCTIONS[function_id]["Properties"]
    assert props["VpcConfig"] == {
        "SecurityGroupIds": [{"Ref": "FunctionSecurityGroup"}],
        "SubnetIds": {
            "Fn::If": [
                "CreateVpc",
                [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}],
                {"Fn::Split": [",", {"Ref": "PrivateSubnetIds"}]},
            ]
        },
    }
    if function_id != "MigrateFunction":
        assert FUNCTIONS[function_id]["DependsOn"] == "Migration"
    assert "VpcConfig" not in FUNCTIONS["PreTokenFunction"]["Properties"]


# --- Aurora, secrets, proxy ----------------------------------------------------------------------------------------


def test_aurora_is_serverless_v2_encrypted_tls_only_and_kept_in_prod() -> None:
    cluster = RESOURCES["DbCluster"]
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql" and props["EngineVersion"] == {"Ref": "DbEngineVersion"}
    assert props["StorageEncrypted"] is True and props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props
    assert props["DatabaseName"] == {"Ref": "DatabaseName"}
    assert props["DeletionProtection"] == {"Fn::If": ["IsProd", True, False]}
    assert cluster["DeletionPolicy"] == cluster["UpdateReplacePolicy"] == {"Fn::If": ["IsProd", "Snapshot", "Delete"]}
    assert "AWS::LanguageExtensions" in TEMPLATE["Transform"]  # what lets the policies depend on the stage
    scaling = props["ServerlessV2ScalingConfiguration"]
    assert scaling["MinCapacity"] == {"Ref": "DbMinCapacity"} and scaling["MaxCapacity"] == {"Ref": "DbMaxCapacity"}
    assert scaling["SecondsUntilAutoPause"] == {
        "Fn::If": ["AutoPause", {"Ref": "DbSecondsUntilAutoPause"}, {"Ref": "AWS::NoValue"}]
    }
    parameters = RESOURCES["DbClusterParameterGroup"]["Properties"]
    assert props["DBClusterParameterGroupName"] == {"Ref": "DbClusterParameterGroup"}
    assert parameters["Parameters"] == {"rds.force_ssl": "1"}
    assert parameters["Family"]["Fn::Sub"][0] == "aurora-postgresql${Major}"
    writer = RESOURCES["DbWriterInstance"]["Properties"]
    assert writer["DBInstanceClass"] == "db.serverless" and writer["DBClusterIdentifier"] == {"Ref": "DbCluster"}
    assert writer["PubliclyAccessible"] is False


def _secret_json(template: str) -> dict[str, Any]:
    """A secret's JSON with its ${...} substitutions and dynamic references replaced by sample values."""
    text = re.sub(r"\{\{resolve:[^}]+\}\}", "resolved-password", template)
    text = re.sub(r"\$\{DbCluster\.Endpoint\.Port\}", "5432", text)
    return dict(json.loads(re.sub(r"\$\{[^}]+\}", "value", text)))


@pytest.mark.parametrize(
    ("secret", "username"), [("AppDbSecret", "support_app"), ("AnalyticsDbSecret", "support_analytics_job")]
)
def test_each_role_has_a_generated_secret_in_the_rds_format(secret: str, username: str) -> None:
    generate = RESOURCES[secret]["Properties"]["GenerateSecretString"]
    template = generate["SecretStringTemplate"]["Fn::Sub"]
    assert generate["GenerateStringKey"] == "password" and generate["PasswordLength"] >= 32
    document = _secret_json(template)
    assert document == {"username": username, "host": "value", "port": 5432, "dbname": "value", "engine": "postgres"}
    assert "${DbCluster.Endpoint.Address}" in template and "${DatabaseName}" in template


def test_behind_the_proxy_the_api_reads_a_secret_with_the_proxys_host_and_the_same_password() -> None:
    text = RESOURCES["AppDbProxySecret"]["Properties"]["SecretString"]["Fn::Sub"]
    assert "{{resolve:secretsmanager:${AppDbSecret}:SecretString:password}}" in text
    assert '"host":"${DbProxy.Endpoint}"' in text
    assert set(_secret_json(text)) >= {"username", "password", "host", "port", "dbname", "engine"}
    for function_id in API_FUNCTIONS:
        variables = FUNCTIONS[function_id]["Properties"]["Environment"]["Variables"]
        assert variables["DB_SECRET_ARN"] == {
            "Fn::If": ["UseRdsProxy", {"Ref": "AppDbProxySecret"}, {"Ref": "AppDbSecret"}]
        }


def test_the_proxy_requires_tls_and_authenticates_with_the_runtime_secret() -> None:
    proxy = RESOURCES["DbProxy"]["Properties"]
    assert proxy["EngineFamily"] == "POSTGRESQL" and proxy["RequireTLS"] is True
    assert proxy["Auth"] == [
        {
            "AuthScheme": "SECRETS",
            "SecretArn": {"Ref": "AppDbSecret"},
            "IAMAuth": "DISABLED",
            "ClientPasswordAuthType": "POSTGRES_SCRAM_SHA_256",
        }
    ]
    target = RESOURCES["DbProxyTargetGroup"]
    assert target["Properties"]["DBClusterIdentifiers"] == [{"Ref": "DbCluster"}]
    assert target["Properties"]["ConnectionPoolConfigurationInfo"]["MaxConnectionsPercent"] < 100
    assert target["DependsOn"] == "DbWriterInstance"


# --- migrations ----------------------------------------------------------------------------------------------------


def test_the_migrate_custom_resource_runs_on_each_deploy_after_the_writer_exists() -> None:
    migration = RESOURCES["Migration"]
    assert migration["Type"] == "Custom::Migrate" and migration["DependsOn"] == "DbWriterInstance"
    props = migration["Properties"]
    assert props["ServiceToken"] == {"Ref": "MigrateFunction.Alias"}
    assert props["FunctionVersion"] == {"Ref": "MigrateFunction.Version"}  # new code or new sql/: a new version
    assert props["DeployId"] == {"Ref": "DeployId"}
    # a function that cannot answer fails the deploy within minutes (it answers FAILED itself otherwise)
    assert FUNCTIONS["MigrateFunction"]["Properties"]["Timeout"] < int(props["ServiceTimeout"]) <= 900
    # it waits for the function's way out (NAT route or endpoint) and is deleted before it
    assert props["Egress"] == {"Fn::If": ["CreateVpc", {"Ref": "PrivateDefaultRoute"}, "existing-vpc"]}
    function = FUNCTIONS["MigrateFunction"]["Properties"]
    assert function["CodeUri"] == "functions/migrate/" and function["Handler"] == "app.lambda_handler"
    assert function["AutoPublishAlias"] == "live"
    assert function["Environment"]["Variables"] == {
        "MASTER_SECRET_ARN": {"Fn::GetAtt": ["DbCluster", "MasterUserSecret.SecretArn"]},
        "DB_HOST": {"Fn::GetAtt": ["DbCluster", "Endpoint.Address"]},
        "DB_PORT": {"Fn::GetAtt": ["DbCluster", "Endpoint.Port"]},
        "DB_NAME": {"Ref": "DatabaseName"},
        "APP_DB_SECRET_ARN": {"Ref": "AppDbSecret"},
        "ANALYTICS_DB_SECRET_ARN": {"Ref": "AnalyticsDbSecret"},
    }
    # All of them intrinsic: `make run`, which applies the functions' plain variables to its own environment,
    # takes none of the migrate function's.
    assert not [v for v in function["Environment"]["Variables"].values() if isinstance(v, str)]


# --- identity ------------------------------------------------------------------------------------------------------


def test_users_cannot_give_themselves_a_tenant_or_a_role() -> None:
    pool = RESOURCES["UserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True  # no self sign-up into no tenant
    client = RESOURCES["UserPoolClient"]["Properties"]
    assert not [a for a in client["WriteAttributes"] if a.startswith("custom:")]
    assert {"custom:tenant_id", "custom:role", "custom:agent_id"} <= set(client["ReadAttributes"])
    assert client["GenerateSecret"] is False and "ALLOW_USER_SRP_AUTH" in client["ExplicitAuthFlows"]


def test_both_authorizers_trust_the_same_issuer_and_audience() -> None:
    http = RESOURCES["HttpApi"]["Properties"]["Auth"]["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"]
    websocket = FUNCTIONS["WebSocketAuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert websocket["JWT_ISSUER"] == http["issuer"] == TEMPLATE["Outputs"]["JwtIssuerUrl"]["Value"]
    assert websocket["JWT_AUDIENCE"]["Fn::If"][1] == http["audience"]["Fn::If"][1][0] == {"Ref": "UserPoolClient"}


# --- operations ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_every_function_logs_to_its_own_log_group_with_a_retention(function_id: str) -> None:
    group = FUNCTIONS[function_id]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert group == f"{function_id}LogGroup"
    assert RESOURCES[group]["Properties"]["RetentionInDays"] == {"Fn::If": ["IsProd", 90, 14]}
    assert RESOURCES[group].get("Condition") == FUNCTIONS[function_id].get("Condition")


@pytest.mark.parametrize("function_id", sorted(API_FUNCTIONS))
def test_api_functions_can_reserve_concurrency_for_the_connection_budget(function_id: str) -> None:
    assert FUNCTIONS[function_id]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveConcurrency", {"Ref": "FunctionReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }


def _alarms() -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def _metrics(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    if "MetricName" in alarm:
        return [(alarm["Namespace"], alarm["MetricName"], {d["Name"]: d["Value"] for d in alarm["Dimensions"]})]
    found = []
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            found.append(
                (metric["Namespace"], metric["MetricName"], {d["Name"]: d["Value"] for d in metric["Dimensions"]})
            )
    return found


def test_the_alarms_watch_5xx_websocket_errors_functions_and_the_analytics_job() -> None:
    alarms = _alarms()
    watched = {(namespace, name) for alarm in alarms.values() for namespace, name, _ in _metrics(alarm)}
    assert watched == {
        ("AWS/ApiGateway", "5xx"),
        ("AWS/ApiGateway", "IntegrationError"),
        ("AWS/ApiGateway", "ExecutionError"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "AsyncEventsDropped"),  # a staff broadcast given up after its retries
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("SupportDesk", "AnalyticsRollupFailedTenants"),
        ("SupportDesk", "WorkflowSweep_audit_check"),  # the tenants whose audit chain the sweep found broken
    }
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["TreatMissingData"] == "notBreaching", name
    assert _metrics(alarms["HttpApi5xxAlarm"]) == [("AWS/ApiGateway", "5xx", {"ApiId": {"Ref": "HttpApi"}})]
    dlq = _metrics(alarms["AnalyticsDeadLetterAlarm"])[0][2]
    assert dlq == {"QueueName": {"Fn::GetAtt": ["AnalyticsDeadLetterQueue", "QueueName"]}}
    assert RESOURCES["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    # CloudWatch cannot publish to a topic encrypted with the AWS managed key
    assert "KmsMasterKeyId" not in RESOURCES["AlarmTopic"]["Properties"]


def test_the_failed_tenants_alarm_reads_the_metric_where_the_rollup_writes_it() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    ((namespace, name, dimensions),) = _metrics(_alarms()["AnalyticsFailedTenantsAlarm"])
    assert namespace == variables["POWERTOOLS_METRICS_NAMESPACE"]
    # Powertools adds the dimension service=<POWERTOOLS_SERVICE_NAME> to every metric
    assert dimensions == {"service": variables["POWERTOOLS_SERVICE_NAME"]}
    assert f'name="{name}"' in (REPO / "functions" / "analytics" / "app.py").read_text()


def test_the_audit_chain_alarm_reads_the_metric_where_the_sweep_writes_it() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    ((namespace, name, dimensions),) = _metrics(_alarms()["AuditChainBrokenAlarm"])
    assert (namespace, dimensions) == (
        variables["POWERTOOLS_METRICS_NAMESPACE"],
        {"service": variables["POWERTOOLS_SERVICE_NAME"]},
    )
    sweep = (REPO / "functions" / "workflow_sweep" / "app.py").read_text()
    assert name == "WorkflowSweep_audit_check"
    assert 'name=f"WorkflowSweep_{name}"' in sweep and '("audit_check", audit.check)' in sweep


def test_every_api_function_is_in_the_function_alarms() -> None:
    alarms = _alarms()

    def functions_in(alarm: str) -> set[str]:
        return {dims["FunctionName"]["Ref"] for _, _, dims in _metrics(alarms[alarm])}

    # the authorizer raises by design on every refused token: its errors are not an alarm, its throttles are
    assert functions_in("FunctionErrorsAlarm") == API_FUNCTIONS - {"WebSocketAuthorizerFunction"}
    assert functions_in("FunctionThrottlesAlarm") == API_FUNCTIONS


def test_the_channels_function_has_an_alarm_of_its_own() -> None:
    # the shared function alarms hold the 10 metrics CloudWatch allows a metric math alarm
    assert len(_metrics(_alarms()["FunctionThrottlesAlarm"])) <= 10
    metrics = _metrics(_alarms()["ChannelsFunctionAlarm"])
    assert {(name, dims["FunctionName"]["Ref"]) for _, name, dims in metrics} == {
        ("Errors", "ChannelsFunction"),
        ("Throttles", "ChannelsFunction"),
    }


def test_the_audit_function_has_an_alarm_of_its_own() -> None:
    # as the channels function's: the shared function alarms are full
    metrics = _metrics(_alarms()["AuditFunctionAlarm"])
    assert {(name, dims["FunctionName"]["Ref"]) for _, name, dims in metrics} == {
        ("Errors", "AuditFunction"),
        ("Throttles", "AuditFunction"),
    }


def test_the_outputs_give_a_user_what_the_readme_asks_for() -> None:
    outputs = TEMPLATE["Outputs"]
    assert {
        "HttpApiUrl",
        "WebSocketUrl",
        "WebSocketManagementEndpoint",
        "UserPoolId",
        "UserPoolClientId",
        "JwtIssuerUrl",
    } <= set(outputs)
    assert outputs["UserPoolId"]["Condition"] == outputs["UserPoolClientId"]["Condition"] == "CreateUserPool"
    assert outputs["WebSocketUrl"]["Value"]["Fn::Sub"].startswith("wss://${WebSocketApi}.execute-api.")


# --- samconfig.toml ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["default", "dev", "prod"])
def test_each_profile_deploys_with_valid_parameters(profile: str) -> None:
    deploy = SAMCONFIG[profile]["deploy"]["parameters"]
    overrides = overrides_of(profile)
    assert set(overrides) <= set(PARAMETERS)
    for name, value in overrides.items():
        parameter = PARAMETERS[name]
        if "AllowedValues" in parameter:
            assert value in parameter["AllowedValues"], name
        if parameter["Type"] == "Number":
            assert parameter.get("MinValue", float("-inf")) <= float(value) <= parameter.get("MaxValue", float("inf"))
    assert broken_rules(parameter_values(**overrides)) == []
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert deploy["resolve_s3"] is True
    assert overrides["Stage"] == ("prod" if profile == "prod" else "dev")
    assert deploy["stack_name"] == f"support-{overrides['Stage']}"


def test_prod_confirms_its_change_sets_and_keeps_its_database_running() -> None:
    assert SAMCONFIG["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert SAMCONFIG["dev"]["deploy"]["parameters"]["confirm_changeset"] is False
    prod = parameter_values(**overrides_of("prod"))
    assert condition("IsProd", prod) and not condition("AutoPause", prod) and condition("ReserveConcurrency", prod)
    # the connection budget: every API function at its reserved concurrency fits in max_connections at min 1 ACU,
    # max 16 ACU (3,360), with room for the migrate function, the analytics job and people
    assert len(API_FUNCTIONS) * int(prod["FunctionReservedConcurrency"]) <= 0.8 * 3360


def test_the_migrate_function_gets_every_variable_its_settings_require() -> None:
    from support.migrate import MigrateSettings

    variables = set(FUNCTIONS["MigrateFunction"]["Properties"]["Environment"]["Variables"])
    required = {field.alias for field in MigrateSettings.model_fields.values() if field.is_required()}
    # MIGRATIONS_DIR is the handler's own (sql/ packaged beside it); the rest come from the template
    assert required - {"MIGRATIONS_DIR"} <= variables
    known = {field.alias for field in MigrateSettings.model_fields.values()}
    assert variables <= known, "the template sets a variable the migrate function does not read"
