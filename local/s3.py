"""S3 on this machine: the same moto server as local SES (`make run`), for the inbound mail SES stores and the files of
emailed messages (support.services.email_in), the privacy exports (support.services.privacy), the retention
archive, and the attachments browsers upload (support.services.attachments).

The functions call S3 with boto3 exactly as in AWS; only the endpoint differs (`AWS_ENDPOINT_URL_S3`, which boto3
reads itself). `make run` creates the bucket at start and writes where its moto listens next to its data folder
(`<data folder>.moto.json`), so that `make inbound-email` (local.inbound_email), a process of its own, puts the mail
into the same S3 the running stack reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from local.ses import REGION, moto_client

BUCKET = "desk-inbound-local"  # the template's InboundEmailBucket, locally
EXPORT_BUCKET = "desk-privacy-exports-local"  # the template's PrivacyExportBucket, locally
ARCHIVE_BUCKET = "desk-archive-local"  # the template's ArchiveBucket (the retention step's archive), locally
ATTACHMENTS_BUCKET = "desk-attachments-local"  # the template's AttachmentsBucket, locally
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_S3"


def client(endpoint: str) -> Any:
    return moto_client("s3", endpoint)


def configure_environment(endpoint: str) -> None:
    """Point this process's (and its children's) S3 calls at `endpoint`, and name the bucket to the functions."""
    os.environ[ENDPOINT_VARIABLE] = endpoint
    os.environ["INBOUND_EMAIL_BUCKET"] = BUCKET
    os.environ["PRIVACY_EXPORT_BUCKET"] = EXPORT_BUCKET
    os.environ["ARCHIVE_BUCKET"] = ARCHIVE_BUCKET
    os.environ["ATTACHMENTS_BUCKET"] = ATTACHMENTS_BUCKET
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


def create_bucket(endpoint: str) -> None:
    """The inbound mail's bucket and the attachments' (files uploaded by browsers: local.s3_post_policy checks their
    upload policies as S3 does)."""
    s3 = client(endpoint)
    for bucket in (BUCKET, EXPORT_BUCKET, ARCHIVE_BUCKET, ATTACHMENTS_BUCKET):
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)


def state_file(data_dir: Path) -> Path:
    return data_dir.with_name(f"{data_dir.name}.moto.json")


def write_state(data_dir: Path, endpoint: str) -> Path:
    path = state_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"endpoint": endpoint, "pid": os.getpid()}) + "\n")
    return path


def forget_state(data_dir: Path, endpoint: str) -> None:
    """Remove the state file if it is still this run's (a later make run on the folder may have replaced it)."""
    path = state_file(data_dir)
    try:
        if json.loads(path.read_text()).get("endpoint") == endpoint:
            path.unlink()
    except (OSError, ValueError):
        pass


def running_endpoint(data_dir: Path) -> str | None:
    """The endpoint of the moto a running make run on `data_dir` serves, or None (no make run, or it stopped)."""
    try:
        endpoint = str(json.loads(state_file(data_dir).read_text())["endpoint"])
    except (OSError, ValueError, KeyError):
        return None
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=3):  # noqa: S310 (our own http endpoint)
            return endpoint
    except OSError:
        return None
