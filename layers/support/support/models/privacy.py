"""Privacy requests: a customer's data exported, or erased (support.services.privacy)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import Field

from support.models.base import ApiModel, Email, Record

# The only shape of an export file's `path` (support.services.privacy.ExportFile.path): files/<id>/<safe name>, the id
# an attachment's, an inbound mail record's, or a thread entry's and the file's position in it; the name at most 100
# safe characters. `filesAfter` must have it: anything else names no file and is a 422, never a listing S3 refuses.
EXPORT_FILE_PATH_PATTERN = r"^files/[0-9a-f-]{36}(-[0-9]{1,9})?/[A-Za-z0-9._-]{1,100}$"


class PrivacyState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PrivacyRequestCreate(ApiModel):
    customer_email: Email = Field(description="the customer the request is about, as they gave it (any case)")


class PrivacyExportFile(Record):
    """One stored file of the customer, copied into the export."""

    path: str = Field(
        description="where it is in the export: the document's `files` entry with this `path` says what "
        "it is (its message, name, type)"
    )
    file_name: str = Field(description="the name it is saved under (the original name, made safe for a key)")
    size_bytes: int
    download_url: str = Field(description="a presigned GET of the file, valid for an hour from this answer")


class PrivacyExport(Record):
    """An export of everything held about one customer: one JSON document and a copy of each of their files."""

    id: UUID
    state: PrivacyState
    customer_email: str | None = Field(description="null once the customer was erased")
    attempts: int
    progress: dict[str, Any] = Field(description="when done: the records per section, and the document's bytes")
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    download_url: str | None = Field(
        default=None, description="when done: a presigned GET of the document, valid for an hour from this answer"
    )
    download_expires_at: datetime | None = None
    files: list[PrivacyExportFile] = Field(
        default_factory=list,
        description="when done: the customer's files copied into the export (at most 100 per answer, by path), each "
        "with its own presigned GET valid for an hour",
    )
    more_files_after: str | None = Field(
        default=None,
        description="when the export holds more files than `files` lists: GET the export again with "
        "`filesAfter` set to this",
    )


class PrivacyErasure(Record):
    """An erasure of one customer's personal data, and how far it got."""

    id: UUID
    state: PrivacyState
    customer_email: str | None = Field(description="whom it is about while it runs; null once done")
    attempts: int
    step: str | None = Field(default=None, description="the step it is at (null before it starts and once done)")
    progress: dict[str, Any] = Field(description="rows changed (or S3 objects deleted) per step so far")
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
