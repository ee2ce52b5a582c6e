"""Routes and handlers read from `template.yaml`, the single source of truth for what the API serves.

The local gateway and the contract tests both start here, so a route added to the template is served
locally without further wiring, and a route missing from it is not.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "template.yaml"

# SAM's own defaults where neither the function nor Globals says otherwise.
LAMBDA_DEFAULT_TIMEOUT_SECONDS = 3
LAMBDA_DEFAULT_MEMORY_MB = 128

type LambdaHandler = Callable[[dict[str, Any], Any], Any]


class TemplateError(ValueError):
    """The template says something the local tools cannot serve (for example code in S3)."""


@dataclass(frozen=True)
class LambdaFunction:
    """What the local execution environments need of an `AWS::Serverless::Function` (Globals applied)."""

    logical_id: str
    code_uri: str  # relative to the template's folder, as written in the template
    handler: str  # "app.lambda_handler"
    timeout_seconds: int = LAMBDA_DEFAULT_TIMEOUT_SECONDS
    memory_size_mb: int = LAMBDA_DEFAULT_MEMORY_MB


@dataclass(frozen=True)
class HttpRoute:
    """One `HttpApi` event of a function: `method` upper case (or ANY), `path` as API Gateway writes it."""

    method: str
    path: str  # "/api/support/tickets/{ticketId}", "/{proxy+}", or "$default"
    function_logical_id: str
    code_uri: str  # relative to the template's folder, as written in the template
    handler: str  # "app.lambda_handler"
    timeout_seconds: int = LAMBDA_DEFAULT_TIMEOUT_SECONDS
    memory_size_mb: int = LAMBDA_DEFAULT_MEMORY_MB
    public: bool = False  # `Auth: {Authorizer: NONE}`: the API's JWT authorizer does not run for this route

    @property
    def route_key(self) -> str:
        """API Gateway's route key: "GET /api/support/tickets/{ticketId}", or "$default"."""
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def function(self) -> LambdaFunction:
        return LambdaFunction(
            self.function_logical_id, self.code_uri, self.handler, self.timeout_seconds, self.memory_size_mb
        )


# CloudFormation short-form tags, read as the long form CloudFormation itself sees: `!Ref X` is
# {"Ref": "X"}, `!GetAtt A.B` is {"Fn::GetAtt": ["A", "B"]}, `!Sub s` is {"Fn::Sub": "s"}.
_SHORT_TAGS = (
    "Base64",
    "Cidr",
    "Condition",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "And",
    "Equals",
    "If",
    "Not",
    "Or",
    "ToJsonString",
    "Length",
    # the rule functions of a template's Rules section
    "Contains",
    "EachMemberEquals",
    "EachMemberIn",
    "RefAll",
    "ValueOf",
    "ValueOfAll",
)


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that also accepts CloudFormation's short-form intrinsic function tags."""


def _intrinsic(name: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    key = name if name in ("Ref", "Condition") else f"Fn::{name}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:  # pragma: no cover - yaml has only these three node kinds
            raise TemplateError(f"unexpected node for !{name}")
        return {key: value}

    return construct


CloudFormationLoader.add_constructor("!Ref", _intrinsic("Ref"))
for _tag in _SHORT_TAGS:
    CloudFormationLoader.add_constructor(f"!{_tag}", _intrinsic(_tag))


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources")
    return document


def function_properties(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's properties with Globals.Function applied the way SAM applies them (own value wins;
    maps such as Environment.Variables merge; lists such as Layers are prepended by Globals)."""
    globals_ = dict(template.get("Globals", {}).get("Function", {}))
    own = dict(template["Resources"][logical_id].get("Properties", {}))
    return _merge_globals(globals_, own)


def _merge_globals(globals_: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = dict(globals_)
    for key, value in own.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = [*base, *value]
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref", "Condition"))


def http_routes(template_path: Path = TEMPLATE) -> list[HttpRoute]:
    """Every `HttpApi` event of every `AWS::Serverless::Function`, in template order."""
    template = load_template(template_path)
    resources: dict[str, Any] = template["Resources"]
    http_apis = {name for name, res in resources.items() if res.get("Type") == "AWS::Serverless::HttpApi"}
    routes: list[HttpRoute] = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = function_properties(template, logical_id)
        for event_id, event in (props.get("Events") or {}).items():
            if event.get("Type") != "HttpApi":
                continue
            event_props = event.get("Properties") or {}
            api_id = event_props.get("ApiId")
            if api_id is not None and _ref_target(api_id) not in http_apis:
                raise TemplateError(f"{logical_id}.{event_id}: ApiId must be !Ref to an HttpApi resource")
            method = str(event_props.get("Method", "ANY")).upper()
            path = str(event_props.get("Path", "$default"))
            if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                method = "ANY"
            routes.append(
                HttpRoute(
                    method=method,
                    path=path,
                    function_logical_id=logical_id,
                    code_uri=_code_uri(logical_id, props),
                    handler=_required_str(logical_id, props, "Handler"),
                    timeout_seconds=int(props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT_SECONDS)),
                    memory_size_mb=int(props.get("MemorySize", LAMBDA_DEFAULT_MEMORY_MB)),
                    public=(event_props.get("Auth") or {}).get("Authorizer") == "NONE",
                )
            )
    return routes


def lambda_function(template: Mapping[str, Any], logical_id: str) -> LambdaFunction:
    """The function `logical_id` of `template`, as the execution environments run it."""
    resource = template["Resources"].get(logical_id)
    if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
        raise TemplateError(f"{logical_id} is not an AWS::Serverless::Function")
    props = function_properties(template, logical_id)
    return LambdaFunction(
        logical_id=logical_id,
        code_uri=_code_uri(logical_id, props),
        handler=_required_str(logical_id, props, "Handler"),
        timeout_seconds=int(props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT_SECONDS)),
        memory_size_mb=int(props.get("MemorySize", LAMBDA_DEFAULT_MEMORY_MB)),
    )


@dataclass(frozen=True)
class WebSocketRoute:
    """One `AWS::ApiGatewayV2::Route` of a WebSocket API, resolved to the Lambda function it invokes."""

    route_key: str  # "$connect", "$disconnect", "$default" or an action such as "sendMessage"
    function: LambdaFunction  # the AWS_PROXY integration's function
    authorizer: LambdaFunction | None = None  # the REQUEST authorizer's function (`AuthorizationType: CUSTOM`)
    identity_sources: tuple[str, ...] = ()  # the authorizer's IdentitySource, e.g. "route.request.querystring.token"
    # Two-way communication: the route's RouteResponseSelectionExpression and the RouteResponseKeys of its
    # `AWS::ApiGatewayV2::RouteResponse`s (API Gateway supports `$default` only, for both).
    route_response_selection_expression: str | None = None
    route_response_keys: tuple[str, ...] = ()

    @property
    def two_way(self) -> bool:
        """Whether API Gateway sends the integration's response (a Lambda proxy result's `body`) to the caller."""
        return bool(self.route_response_keys)

    @property
    def function_logical_id(self) -> str:
        return self.function.logical_id

    @property
    def code_uri(self) -> str:
        return self.function.code_uri

    @property
    def handler(self) -> str:
        return self.function.handler

    @property
    def timeout_seconds(self) -> int:
        return self.function.timeout_seconds


@dataclass(frozen=True)
class WebSocketApi:
    """An `AWS::ApiGatewayV2::Api` with `ProtocolType: WEBSOCKET` and its routes."""

    logical_id: str
    route_selection_expression: str  # "$request.body.action"
    routes: tuple[WebSocketRoute, ...]
    stage: str = "$default"

    def route(self, route_key: str) -> WebSocketRoute | None:
        return next((route for route in self.routes if route.route_key == route_key), None)


def websocket_api(template_path: Path = TEMPLATE, api_id: str | None = None) -> WebSocketApi:
    """The template's WebSocket API (`api_id`, or its only one): every `AWS::ApiGatewayV2::Route` of it,
    each resolved through its `Target` integration (AWS_PROXY) to a function, and through its authorizer
    (REQUEST, Lambda) to another. A route added to the template is served locally without more wiring."""
    template = load_template(template_path)
    resources: dict[str, Any] = template["Resources"]
    parameters: dict[str, Any] = template.get("Parameters", {})
    apis = [
        name
        for name, res in resources.items()
        if res.get("Type") == "AWS::ApiGatewayV2::Api"
        and (res.get("Properties") or {}).get("ProtocolType") == "WEBSOCKET"
    ]
    if api_id is None:
        if len(apis) != 1:
            raise TemplateError(f"expected one WebSocket API in {template_path}, found {len(apis)}")
        api_id = apis[0]
    elif api_id not in apis:
        raise TemplateError(f"{api_id} is not a WebSocket API")
    api_props = resources[api_id].get("Properties") or {}
    expression = api_props.get("RouteSelectionExpression")
    if not isinstance(expression, str):
        raise TemplateError(f"{api_id}: RouteSelectionExpression must be a plain string")

    responses = _route_responses(resources, api_id)
    routes: list[WebSocketRoute] = []
    for logical_id, props in _of_api(resources, "AWS::ApiGatewayV2::Route", api_id):
        route_key = props.get("RouteKey")
        if not isinstance(route_key, str):
            raise TemplateError(f"{logical_id}: RouteKey must be a plain string")
        integration_id = _integration_of(logical_id, props.get("Target"))
        integration = (resources.get(integration_id) or {}).get("Properties") or {}
        if integration.get("IntegrationType") != "AWS_PROXY":
            raise TemplateError(f"{integration_id}: only AWS_PROXY (Lambda proxy) integrations run locally")
        function = lambda_function(template, _function_of_uri(integration_id, integration.get("IntegrationUri")))
        authorizer: LambdaFunction | None = None
        identity_sources: tuple[str, ...] = ()
        if props.get("AuthorizationType", "NONE") == "CUSTOM":
            authorizer_id = _ref_target(props.get("AuthorizerId"))
            authorizer_props = (resources.get(authorizer_id or "") or {}).get("Properties") or {}
            if authorizer_props.get("AuthorizerType") != "REQUEST":
                raise TemplateError(f"{logical_id}: AuthorizerId must be !Ref to a REQUEST authorizer")
            authorizer = lambda_function(
                template, _function_of_uri(str(authorizer_id), authorizer_props.get("AuthorizerUri"))
            )
            identity_sources = tuple(str(s) for s in _as_list(authorizer_props.get("IdentitySource") or []))
        elif props.get("AuthorizationType", "NONE") != "NONE":
            raise TemplateError(f"{logical_id}: AuthorizationType {props['AuthorizationType']} is not served locally")
        selection = props.get("RouteResponseSelectionExpression")
        keys = responses.pop(logical_id, ())
        if selection is not None and selection != "$default":
            raise TemplateError(f"{logical_id}: RouteResponseSelectionExpression must be $default (API Gateway's only)")
        if (selection is None) != (not keys):
            raise TemplateError(
                f"{logical_id}: a two-way route has both RouteResponseSelectionExpression $default and a RouteResponse"
            )
        routes.append(WebSocketRoute(route_key, function, authorizer, identity_sources, selection, keys))
    if responses:
        raise TemplateError(f"RouteResponse of no route of {api_id}: {', '.join(sorted(responses))}")

    stage = "$default"
    for _, props in _of_api(resources, "AWS::ApiGatewayV2::Stage", api_id):
        resolved = _resolve(props.get("StageName"), parameters)
        stage = resolved if isinstance(resolved, str) else stage
    return WebSocketApi(api_id, expression, tuple(routes), stage)


def _of_api(resources: Mapping[str, Any], kind: str, api_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The logical id and the properties of each resource of type `kind` whose `ApiId` is `!Ref api_id`."""
    for logical_id, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == kind and _ref_target(props.get("ApiId")) == api_id:
            yield logical_id, props


def _route_responses(resources: Mapping[str, Any], api_id: str) -> dict[str, tuple[str, ...]]:
    """The RouteResponseKeys of each route of `api_id` (by the route's logical id) that has
    `AWS::ApiGatewayV2::RouteResponse`s: `RouteId: !Ref TheRoute`, `RouteResponseKey: $default`."""
    found: dict[str, tuple[str, ...]] = {}
    for logical_id, props in _of_api(resources, "AWS::ApiGatewayV2::RouteResponse", api_id):
        route_id = _ref_target(props.get("RouteId"))
        if route_id is None or (resources.get(route_id) or {}).get("Type") != "AWS::ApiGatewayV2::Route":
            raise TemplateError(f"{logical_id}: RouteId must be !Ref to an AWS::ApiGatewayV2::Route")
        key = props.get("RouteResponseKey")
        if key != "$default":
            raise TemplateError(f"{logical_id}: RouteResponseKey must be $default (API Gateway's only key)")
        found[route_id] = (*found.get(route_id, ()), key)
    return found


def invoked_functions(template_path: Path = TEMPLATE) -> list[LambdaFunction]:
    """The functions other functions invoke (through Lambda's Invoke API): those a function's environment names
    with `!Ref` (BROADCAST_FUNCTION_NAME: !Ref BroadcastFunction). The local gateway serves their Invoke API."""
    template = load_template(template_path)
    resources: dict[str, Any] = template["Resources"]
    named: set[str] = set()
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        variables = function_properties(template, logical_id).get("Environment", {}).get("Variables", {})
        for value in variables.values():
            target = _ref_target(value)
            if target is not None and resources.get(target, {}).get("Type") == "AWS::Serverless::Function":
                named.add(target)
    return [lambda_function(template, logical_id) for logical_id in sorted(named)]


def websocket_routes(template_path: Path = TEMPLATE, api_id: str | None = None) -> list[WebSocketRoute]:
    """The routes of the template's WebSocket API, in template order."""
    return list(websocket_api(template_path, api_id).routes)


def _integration_of(route_id: str, target: Any) -> str:
    """`Target: !Sub "integrations/${WebSocketIntegration}"` (or `!Join ["/", [integrations, !Ref X]]`)."""
    sub = target.get("Fn::Sub") if isinstance(target, dict) else None
    if isinstance(sub, str) and (found := re.fullmatch(r"integrations/\$\{(\w+)\}", sub)):
        return found.group(1)
    if isinstance(target, dict) and isinstance(target.get("Fn::Join"), list):
        separator, parts = target["Fn::Join"]
        if separator == "/" and len(parts) == 2 and parts[0] == "integrations" and _ref_target(parts[1]):
            return str(_ref_target(parts[1]))
    raise TemplateError(f'{route_id}: Target must be !Sub "integrations/${{Integration}}"')


def _function_of_uri(owner: str, uri: Any) -> str:
    """The function a Lambda integration or authorizer URI names: `${Function.Arn}` inside a `!Sub`."""
    text = uri.get("Fn::Sub") if isinstance(uri, dict) else None
    if isinstance(text, str) and (found := re.search(r"/functions/\$\{(\w+)\.Arn\}/invocations$", text)):
        return found.group(1)
    raise TemplateError(f"{owner}: the URI must be !Sub ...functions/${{Function.Arn}}/invocations")


def _ref_target(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def _code_uri(logical_id: str, props: Mapping[str, Any]) -> str:
    code_uri = props.get("CodeUri", ".")
    if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
        raise TemplateError(f"{logical_id}: CodeUri must be a local folder to run it locally")
    return code_uri


def _required_str(logical_id: str, props: Mapping[str, Any], key: str) -> str:
    value = props.get(key)
    if not isinstance(value, str):
        raise TemplateError(f"{logical_id}: {key} must be a plain string")
    return value


@dataclass(frozen=True)
class CorsConfig:
    """An HttpApi's CorsConfiguration, parameters resolved to their defaults."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int = 0


def cors_configuration(template_path: Path = TEMPLATE, api_id: str = "HttpApi") -> CorsConfig | None:
    """The CORS settings API Gateway applies to `api_id` (it answers preflight requests itself)."""
    template = load_template(template_path)
    cors = template["Resources"][api_id].get("Properties", {}).get("CorsConfiguration")
    if cors is None or cors is False:
        return None
    if cors is True:
        return CorsConfig(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))
    parameters: dict[str, Any] = template.get("Parameters", {})

    def values(key: str) -> tuple[str, ...]:
        return tuple(str(v) for v in _as_list(_resolve(cors.get(key, []), parameters)))

    return CorsConfig(
        allow_origins=values("AllowOrigins"),
        allow_methods=values("AllowMethods"),
        allow_headers=values("AllowHeaders"),
        expose_headers=values("ExposeHeaders"),
        allow_credentials=bool(_resolve(cors.get("AllowCredentials", False), parameters)),
        max_age=int(_resolve(cors.get("MaxAge", 0), parameters)),
    )


def _resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    """A `!Ref` to a parameter becomes the parameter's default (a list for CommaDelimitedList)."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        parameter = parameters[value["Ref"]]
        default = parameter.get("Default")
        if default is None:
            raise TemplateError(f"parameter {value['Ref']} has no default to run with locally")
        if parameter.get("Type") == "CommaDelimitedList":
            return [item.strip() for item in str(default).split(",")]
        return default
    if isinstance(value, list):
        return [_resolve(item, parameters) for item in value]
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_environment(template_path: Path = TEMPLATE) -> dict[str, dict[str, str]]:
    """Each function's environment variables with plain values (Globals applied); variables set by
    intrinsic functions (parameters, conditions) are left out: locally the caller provides those."""
    template = load_template(template_path)
    environments: dict[str, dict[str, str]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        variables = function_properties(template, logical_id).get("Environment", {}).get("Variables", {})
        environments[logical_id] = {
            name: str(value) for name, value in variables.items() if isinstance(value, str | int | float)
        }
    return environments


def module_name(code_uri: str, handler: str, repo: Path = REPO) -> str:
    """A module name unique across functions: functions/tickets/ + app.lambda_handler -> functions.tickets.app."""
    module_path, _, _ = handler.rpartition(".")
    folder = (repo / code_uri).resolve()
    try:
        parts = folder.relative_to(repo.resolve()).parts
    except ValueError:  # code outside the repository (a test's temporary folder)
        parts = ("_local_functions", re.sub(r"\W", "_", str(folder)))
    return ".".join((*parts, module_path))


def load_module(code_uri: str, handler: str, repo: Path = REPO) -> ModuleType:
    """Import a function's handler module from its file, as Lambda would import it from the code folder,
    under a name that cannot collide with another function's `app` module. Imported once."""
    module_path, _, function_name = handler.rpartition(".")
    if not module_path or not function_name:
        raise TemplateError(f"handler {handler!r} is not of the form module.function")
    name = module_name(code_uri, handler, repo)
    if name in sys.modules:
        return sys.modules[name]
    file = (repo / code_uri).resolve().joinpath(*module_path.split(".")).with_suffix(".py")
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None or not file.is_file():
        raise TemplateError(f"no handler module at {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_handler(code_uri: str, handler: str, repo: Path = REPO) -> LambdaHandler:
    """The handler callable named by a function's CodeUri and Handler (`app.lambda_handler`)."""
    module = load_module(code_uri, handler, repo)
    function_name = handler.rpartition(".")[2]
    func = getattr(module, function_name, None)
    if not callable(func):
        raise TemplateError(f"{module.__name__} has no callable {function_name!r}")
    return func  # type: ignore[no-any-return]


def load_route_handler(route: HttpRoute) -> LambdaHandler:
    return load_handler(route.code_uri, route.handler)
