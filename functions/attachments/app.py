"""Attachments endpoint group: an upload URL for a file of a ticket or chat (a presigned S3 POST: the file goes
straight to S3), and a short-lived download URL of a file (a presigned GET). Admins and agents of the tenant; the
widget's visitors have their own routes in the widgets group. support.services.attachments has the rules."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from support.http import create_resolver, created, current_principal, ok, with_storage_errors
from support.models.attachments import AttachmentDownload, AttachmentUpload, AttachmentUploadRequest
from support.models.envelopes import Envelope
from support.observability import logger, metrics
from support.services import attachments

app = create_resolver()


@app.post(
    "/api/support/attachments/upload-url",
    summary="Get an upload URL for a file of a ticket or chat (presigned S3 POST, up to 100 MB)",
    status_code=201,
    responses=with_storage_errors(201),
)
def create_upload_url(request: AttachmentUploadRequest) -> Response[Envelope[AttachmentUpload]]:
    return created(attachments.upload_url(current_principal(app), request))


@app.get(
    "/api/support/attachments/<attachment_id>",
    summary="Get a download URL of a file (presigned GET, 5 minutes)",
    responses=with_storage_errors(200),
)
def get_download_url(attachment_id: UUID) -> Response[Envelope[AttachmentDownload]]:
    return ok(attachments.download_url(current_principal(app), attachment_id))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
