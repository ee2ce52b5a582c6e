"""The local API Gateway: the APIs of `template.yaml`, served by uvicorn, their handlers run as Lambda runs them.

`sam local start-api` needs Docker and has no WebSocket support (aws-sam-cli issues 896 and 7975), so the
developers and the tests use this gateway; it behaves like API Gateway so that the production Lambda code
runs unchanged. Its parts are API Gateway's:

- `http_api`: the HTTP API (routing, payload format 2.0 events, responses), on `PORT` (3000), with the
  local identity provider's `/.well-known/jwks.json`;
- `websocket_api`: the WebSocket API (`$connect`, messages routed by the route selection expression,
  `$disconnect`, API Gateway's limits), on `WS_PORT` (3001);
- `management_api`: the `@connections` API beside it, for the functions' fan-out (and boto3's client);
- `lambda_api`: Lambda's asynchronous Invoke API beside them, for the functions one function invokes (the staff
  broadcast's);
- `authorizers`: the HTTP API's JWT authorizer and the WebSocket `$connect` Lambda REQUEST authorizer;
- `execution_environments`: Lambda's execution environments, worker processes (or in process for tests);
- `server`: uvicorn, the background servers of tests and `make run`, and the logs' token redaction;
- `hosts`: every listener answers its own host names only (127.0.0.1, localhost, [::1] on its port).
"""

from local.gateway.authorizers import JwtAuthorizer, build_websocket_authorizer_event, evaluate_policy
from local.gateway.aws import ACCOUNT_ID, REGION
from local.gateway.execution_environments import (
    FunctionError,
    InProcessEnvironments,
    LambdaContext,
    WorkerPools,
)
from local.gateway.http_api import (
    API_ID,
    HTTP_METHODS,
    MAX_INVOCATION_BYTES,
    MAX_REQUEST_BYTES,
    STAGE,
    build_http_event,
    create_app,
)
from local.gateway.server import (
    WebSocketEndpoints,
    redact,
    running_gateway,
    running_template_websocket_api,
    running_websocket_gateway,
    serve,
)
from local.gateway.websocket_api import (
    IDLE_TIMEOUT_SECONDS,
    MAX_CONNECTION_SECONDS,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    WS_API_ID,
    build_websocket_event,
    create_websocket_app,
    direct_websocket_event,
    websocket_request_context,
)

__all__ = [
    "ACCOUNT_ID",
    "API_ID",
    "HTTP_METHODS",
    "IDLE_TIMEOUT_SECONDS",
    "MAX_CONNECTION_SECONDS",
    "MAX_FRAME_BYTES",
    "MAX_INVOCATION_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_REQUEST_BYTES",
    "REGION",
    "STAGE",
    "WS_API_ID",
    "FunctionError",
    "InProcessEnvironments",
    "JwtAuthorizer",
    "LambdaContext",
    "WebSocketEndpoints",
    "WorkerPools",
    "build_http_event",
    "build_websocket_authorizer_event",
    "build_websocket_event",
    "create_app",
    "create_websocket_app",
    "direct_websocket_event",
    "evaluate_policy",
    "redact",
    "running_gateway",
    "running_template_websocket_api",
    "running_websocket_gateway",
    "serve",
    "websocket_request_context",
]
