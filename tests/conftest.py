"""Shared fixtures: one real, migrated PostgreSQL for the session (embedded unless DATABASE_URL is set).

Tests isolate themselves by tenant: each one makes fresh tenant ids, so nothing needs truncating.
"""

from __future__ import annotations

import os

# What template.yaml's Globals give every function; set before the layer is imported, as in Lambda.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "support")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SupportDesk")
# The visitor token key the template's VisitorTokenSecret holds in AWS (any 32+ bytes will do in tests).
os.environ.setdefault("VISITOR_TOKEN_SECRET", "test-visitor-key-" + "x" * 32)
# The server to test against, if the developer named one; else an embedded PostgreSQL is started.
GIVEN_DATABASE_URL = os.environ.get("DATABASE_URL") or ""
# Handlers validate their configuration at import; the `db` fixture replaces this with the real database.
os.environ.setdefault("DATABASE_URL", "postgresql://database-not-started.invalid/support")

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest

from local.database import DatabaseUrls, connected_as, database
from tests.http_events import HandlerClient


@pytest.fixture(scope="session")
def db() -> Iterator[DatabaseUrls]:
    test_db = database("support_test", purpose="test", recreate=True, quiet=True, server_url=GIVEN_DATABASE_URL)
    with test_db as urls, connected_as(urls.app):  # the handlers run as the runtime role, under RLS
        yield urls


@pytest.fixture
def tenant() -> UUID:
    return uuid4()


@pytest.fixture
def other_tenant() -> UUID:
    return uuid4()


@pytest.fixture
def tickets_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.tickets import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@pytest.fixture
def agents_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.agents import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@pytest.fixture
def canned_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.canned_responses import app

    return HandlerClient(app.lambda_handler, tenant=tenant)
