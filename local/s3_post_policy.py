"""S3's browser-upload rules for the local moto server: moto 5 stores a presigned POST's file without reading its
policy (moto/s3/responses.py, `_bucket_response_post`), so locally a file larger than the policy allows, or of
another type, would be taken. This WSGI middleware in front of moto does what S3 does with a POST that carries a
`policy` field, before moto sees it (AWS docs, "Creating a POST policy" and "Authenticating requests in browser-based
uploads using POST (AWS Signature Version 4)"):

* the signature: `x-amz-signature` must be HMAC-SHA256 of the base64 policy with the SigV4 key derived from the
  secret key (moto's local one, `local`) for the credential's date, region and service; else 403 SignatureDoesNotMatch;
* the policy's `expiration` must be in the future; else 403 AccessDenied ("Invalid according to Policy: Policy
  expired");
* every condition must hold: `{"field": value}` and `["eq", "$field", value]` exactly, `["starts-with", "$field",
  prefix]`, `["content-length-range", min, max]` on the file's size (400 EntityTooLarge / EntityTooSmall); a failed one
  is 403 AccessDenied ("Invalid according to Policy: Policy Condition failed: ...").

And S3's CORS for the browser: every answer to a request with an Origin allows it (the template's AttachmentsBucket
allows any origin for POST and GET), and a preflight is answered here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request

LOCAL_SECRET_KEY = "local"  # noqa: S105 (moto's credentials, local.ses.moto_client and `make run`)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _error(start_response: Callable[..., Any], status: str, code: str, message: str) -> list[bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    ).encode()
    start_response(
        status,
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body))), ("Access-Control-Allow-Origin", "*")],
    )
    return [body]


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def policy_refusal(
    fields: dict[str, str], file_size: int, bucket: str, *, now: datetime
) -> tuple[str, str, str] | None:
    """Why S3 would refuse this upload (status, code, message), or None."""
    policy_b64 = fields.get("policy", "")
    try:
        policy = json.loads(base64.b64decode(policy_b64))
    except ValueError:
        return "400 Bad Request", "InvalidPolicyDocument", "Invalid Policy: Invalid JSON."
    credential = fields.get("x-amz-credential", "")
    try:
        _access_key, date, region, service, _terminator = credential.split("/")
    except ValueError:
        return "403 Forbidden", "AccessDenied", "Invalid according to Policy: Policy Condition failed: x-amz-credential"
    expected = hmac.new(_signing_key(LOCAL_SECRET_KEY, date, region, service), policy_b64.encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), fields.get("x-amz-signature", "")):
        return "403 Forbidden", "SignatureDoesNotMatch", "The request signature we calculated does not match"
    expiration = datetime.fromisoformat(str(policy.get("expiration", "")).replace("Z", "+00:00"))
    if expiration <= now:
        return "403 Forbidden", "AccessDenied", "Invalid according to Policy: Policy expired."
    values = {**{name.lower(): value for name, value in fields.items()}, "bucket": bucket}
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            [(name, wanted)] = condition.items()
            ok = values.get(name.lower()) == wanted
            failed = f'["eq", "${name}", "{wanted}"]'
        elif condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if file_size > high:
                return "400 Bad Request", "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"
            if file_size < low:
                return (
                    "400 Bad Request",
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size",
                )
            continue
        else:
            operator, name, wanted = condition[0], str(condition[1]).lstrip("$"), condition[2]
            value = values.get(name.lower())
            ok = value == wanted if operator == "eq" else value is not None and value.startswith(wanted)
            failed = json.dumps(condition)
        if not ok:
            return "403 Forbidden", "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {failed}"
    return None


class PostPolicyMiddleware:
    """moto's WSGI app behind S3's POST policy check and CORS."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        if environ["REQUEST_METHOD"] == "OPTIONS" and origin:
            start_response(
                "200 OK",
                [
                    ("Access-Control-Allow-Origin", "*"),
                    ("Access-Control-Allow-Methods", "GET, POST, PUT, HEAD"),
                    ("Access-Control-Allow-Headers", environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "*")),
                    ("Access-Control-Max-Age", "3000"),
                    ("Content-Length", "0"),
                ],
            )
            return [b""]
        content_type = environ.get("CONTENT_TYPE", "")
        if environ["REQUEST_METHOD"] == "POST" and content_type.startswith("multipart/form-data"):
            refusal = self._refusal(environ)
            if refusal is not None:
                return _error(start_response, *refusal)
        if not origin:
            return self.app(environ, start_response)

        def with_cors(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            if not any(name.lower() == "access-control-allow-origin" for name, _ in headers):
                headers = [*headers, ("Access-Control-Allow-Origin", "*")]
            return start_response(status, headers, *rest)

        return self.app(environ, with_cors)

    def _refusal(self, environ: dict[str, Any]) -> tuple[str, str, str] | None:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        parsed = dict(environ, **{"wsgi.input": io.BytesIO(body)})
        request = Request(parsed, shallow=False)
        request.max_form_memory_size = None
        fields = {name: request.form[name] for name in request.form}
        if "policy" not in fields:
            return None
        upload = request.files.get("file")
        size = len(upload.read()) if upload is not None else 0
        host = environ.get("HTTP_HOST", "")
        path_bucket = environ.get("PATH_INFO", "/").strip("/").split("/")[0]
        bucket = path_bucket or host.split(".")[0]
        return policy_refusal(fields, size, bucket, now=datetime.now(UTC))


def encode_policy(policy: dict[str, Any]) -> str:
    """A policy as a form carries it (tests that tamper with one)."""
    return base64.b64encode(json.dumps(policy).encode()).decode()
