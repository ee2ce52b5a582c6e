"""Fixtures of the integration tests that talk to AWS services: moto in server mode stands in for them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local import ses as local_ses


@pytest.fixture(scope="module")
def moto() -> Iterator[local_ses.LocalSes]:
    """moto in server mode on 127.0.0.1 (local.ses, as `make run` runs it): SES, S3 and the rest, one per module."""
    server = local_ses.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The credentials and region boto3 needs to sign a call to moto (which takes any), for the test."""
    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", local_ses.REGION)


@pytest.fixture
def s3(
    moto: local_ses.LocalSes, moto_credentials: None, monkeypatch: pytest.MonkeyPatch, s3_buckets: dict[str, str]
) -> Any:
    """A boto3 S3 client of moto, with the code's S3 calls pointed at moto and the module's buckets made: `s3_buckets`
    (a fixture of the module) maps each environment variable the code reads a bucket's name from to the name."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)
    for variable, bucket in s3_buckets.items():
        monkeypatch.setenv(variable, bucket)
    client = boto3.client("s3", endpoint_url=moto.endpoint, region_name=local_ses.REGION)
    for bucket in s3_buckets.values():
        client.create_bucket(Bucket=bucket)
    return client


@pytest.fixture(autouse=True)
def automations_run_here(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Automation runs in the test's own process, as with no AutomationsFunction configured: a local stack an e2e test
    left running for the session (its AUTOMATIONS_FUNCTION_NAME in the environment) would otherwise be invoked, and
    run the events against its own database, not the test's. A test that wants the function sets it itself."""
    from support.config import get_settings

    monkeypatch.delenv("AUTOMATIONS_FUNCTION_NAME", raising=False)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
