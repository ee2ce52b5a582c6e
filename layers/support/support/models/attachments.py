"""Attachments: the upload URL a file is sent to straight from the browser (a presigned S3 POST), and the
short-lived download URL it is read from (a presigned GET). support.services.attachments says how they are checked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints, field_validator, model_validator

from support.models.base import ApiModel, NoNul, Record
from support.models.widgets import WidgetKey

ATTACHMENT_MAX_BYTES = 100 * 1024 * 1024  # the seed's 100 MB per file

# What may be uploaded: documents, images, audio and video people send a desk, and archives. Not HTML, SVG or
# scripts: a file opened from the bucket must not run in anyone's browser (downloads are served with
# Content-Disposition: attachment in any case). docs/api.md lists them.
ALLOWED_CONTENT_TYPES = frozenset(
    {
        "application/pdf",
        "application/zip",
        "application/json",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "image/gif",
        "image/heic",
        "image/jpeg",
        "image/png",
        "image/webp",
        "text/csv",
        "text/plain",
        "video/mp4",
        "video/quicktime",
        "video/webm",
    }
)

FileName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), NoNul]


class _FileDeclaration(ApiModel):
    file_name: FileName
    content_type: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=255)]
    size_bytes: int = Field(ge=1, le=ATTACHMENT_MAX_BYTES, description="the file's exact size, at most 100 MB")

    @field_validator("content_type")
    @classmethod
    def _allowed(cls, value: str) -> str:
        if value not in ALLOWED_CONTENT_TYPES:
            raise ValueError(f"content type {value!r} is not accepted (docs/api.md lists those that are)")
        return value

    @field_validator("file_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n/\\"):
            raise ValueError("a file name is one line without slashes")
        return value


class AttachmentUploadRequest(_FileDeclaration):
    """A file for a ticket (`ticketId`, its conversations) or a chat (`sessionId`, its messages): exactly one."""

    ticket_id: UUID | None = None
    session_id: UUID | None = None

    @model_validator(mode="after")
    def _one_owner(self) -> AttachmentUploadRequest:
        if (self.ticket_id is None) == (self.session_id is None):
            raise ValueError("give exactly one of ticketId and sessionId")
        return self


ResumeToken = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class VisitorAttachmentUploadRequest(_FileDeclaration):
    """The widget's: a file for the visitor's own chat, named by the visitor's resume token (POST
    /api/support/widget/session answers it)."""

    widget_key: WidgetKey
    resume_token: ResumeToken
    session_id: UUID


class VisitorAttachmentDownloadRequest(ApiModel):
    widget_key: WidgetKey
    resume_token: ResumeToken


class AttachmentUpload(Record):
    attachment_id: UUID = Field(description="name it in a message's `attachmentIds` once the file is uploaded")
    url: str = Field(description="POST the form here: `fields` first, then the file as the `file` field")
    fields: dict[str, str] = Field(description="the form fields the upload must carry exactly as given")
    expires_at: datetime = Field(description="the upload must start before this (15 minutes)")
    max_size_bytes: int = Field(description="the declared size: S3 refuses a larger file")


class AttachmentDownload(Record):
    attachment_id: UUID
    url: str = Field(description="a presigned GET of the file, valid until `expiresAt` (5 minutes)")
    expires_at: datetime
    file_name: str
    content_type: str
    size_bytes: int


class AttachmentSummary(Record):
    """A file as a message shows it (a ticket conversation's `attachments` entries, a chat message's)."""

    id: UUID
    file_name: str
    content_type: str
    size_bytes: int
