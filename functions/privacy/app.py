"""Privacy endpoint group (admins): a customer's data exported as one JSON document, or erased everywhere; each an
asynchronous job whose state the GET routes answer (support.services.privacy, docs/api.md "Privacy requests")."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import create_resolver, current_principal, ok, with_storage_errors
from support.idempotency import idempotent
from support.models.envelopes import Envelope
from support.models.privacy import EXPORT_FILE_PATH_PATTERN, PrivacyErasure, PrivacyExport, PrivacyRequestCreate
from support.observability import logger, metrics
from support.services import privacy

app = create_resolver()

BASE = "/api/support/privacy"


@app.post(
    f"{BASE}/exports",
    summary="Export everything held about a customer",
    description="Admins only. Answers 202 with the export's id and state; the job gathers the customer's tickets, "
    "thread entries, chats and messages, feedback, contacts, mail records and attachments' metadata into one JSON "
    "document in an encrypted bucket, and copies their files (the files of their tickets' and chats' messages, "
    "their mail and its files) beside it. GET the export for its state and, when done, its download links.",
    status_code=202,
    response_description="the export, accepted (pending, or already further along)",
    middlewares=[idempotent],
)
def request_export(request: PrivacyRequestCreate) -> Response[Envelope[PrivacyExport]]:
    metrics.add_metric(name="PrivacyExportsRequested", unit="Count", value=1)
    return ok(privacy.request_export(current_principal(app), request), status=202)


@app.get(
    f"{BASE}/exports/<export_id>",
    summary="Get a customer data export",
    description="Admins only. `state`: pending, running, done or failed; when done, `downloadUrl` is a presigned "
    "GET of the document, and `files` the customer's files copied into the export (100 per answer, by path; "
    "`moreFilesAfter` names the next page's `filesAfter`), each with its own presigned GET; every link is valid "
    "for an hour from this answer.",
    responses=with_storage_errors(200),  # its files are listed from S3
)
def get_export(
    export_id: UUID,
    files_after: Annotated[
        str | None,
        Query(
            alias="filesAfter",
            pattern=EXPORT_FILE_PATH_PATTERN,
            description="list the files after this path (a `path` of the export's files, as `moreFilesAfter` names it)",
        ),
    ] = None,
) -> Response[Envelope[PrivacyExport]]:
    return ok(privacy.get_export(current_principal(app), export_id, files_after=files_after))


@app.post(
    f"{BASE}/erasures",
    summary="Erase a customer's personal data",
    description="Admins only. Answers 202 with the erasure's id and state. Names, emails, phone numbers, IP "
    "addresses, browser strings, message and feedback texts, contacts, mail and files in S3 and earlier exports "
    "are erased; the records stay (statuses, agents, times, ratings), so every figure stays true. An erasure of "
    "the same customer still running is answered instead of a new one; one asked again later finds nothing left.",
    status_code=202,
    response_description="the erasure, accepted",
    middlewares=[idempotent],
)
def request_erasure(request: PrivacyRequestCreate) -> Response[Envelope[PrivacyErasure]]:
    metrics.add_metric(name="PrivacyErasuresRequested", unit="Count", value=1)
    return ok(privacy.request_erasure(current_principal(app), request), status=202)


@app.get(
    f"{BASE}/erasures/<erasure_id>",
    summary="Get a customer data erasure",
    description="Admins only. `state` and `progress`: rows changed per step so far, `step` the one it is at.",
)
def get_erasure(erasure_id: UUID) -> Response[Envelope[PrivacyErasure]]:
    return ok(privacy.get_erasure(current_principal(app), erasure_id))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
