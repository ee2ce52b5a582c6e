"""Retry-safe writes: the Idempotency-Key header of the creates (docs/api.md, "Retry-safe writes"), through the real
handlers on the real PostgreSQL."""

from __future__ import annotations

import importlib.util
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.idempotency import purge_expired
from tests.http_events import HandlerClient
from tests.integration.test_chat_concurrency import connection_per_thread  # noqa: F401 (used by name as a fixture)
from tests.integration.test_tickets_api import BASE

TICKET = {"customerName": "Ada Lovelace", "customerEmail": "ada@example.com", "subject": "Order arrived damaged"}


def _tickets_with_subject(db: DatabaseUrls, tenant: UUID, subject: str) -> int:
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT count(*) FROM support_tickets WHERE user_id = %s AND subject = %s", (tenant, subject)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"create-{uuid4()}"}


def test_a_retry_with_the_same_key_and_body_answers_the_first_result_and_creates_nothing(
    db: DatabaseUrls, tickets_api: HandlerClient
) -> None:
    subject = f"Retried {uuid4()}"
    headers = _key()
    first = tickets_api.post(BASE, {**TICKET, "subject": subject}, headers=headers)
    assert first.status == 201, first.body
    assert "Idempotent-Replayed" not in first.headers

    again = tickets_api.post(BASE, {**TICKET, "subject": subject}, headers=headers)

    assert again.status == 201
    assert again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert _tickets_with_subject(db, tickets_api.tenant, subject) == 1


def test_the_same_key_with_another_body_is_422(db: DatabaseUrls, tickets_api: HandlerClient) -> None:
    headers = _key()
    assert tickets_api.post(BASE, {**TICKET, "subject": "First"}, headers=headers).status == 201

    other = tickets_api.post(BASE, {**TICKET, "subject": f"Other {uuid4()}"}, headers=headers)

    assert other.status == 422
    assert other.error["code"] == "idempotency_key_reused"
    assert set(other.body) == {"success", "error"} and set(other.error) == {"code", "message", "details"}


def test_the_same_key_from_another_role_is_not_a_replay(db: DatabaseUrls, tickets_api: HandlerClient) -> None:
    headers = _key()
    subject = f"By an admin {uuid4()}"
    assert tickets_api.post(BASE, {**TICKET, "subject": subject}, headers=headers).status == 201
    agent = tickets_api.as_tenant(tickets_api.tenant, role="agent")
    reply = agent.post(BASE, {**TICKET, "subject": subject}, headers=headers)
    assert reply.status == 422
    assert reply.error["code"] == "idempotency_key_reused"
    assert _tickets_with_subject(db, tickets_api.tenant, subject) == 1


def test_the_same_key_on_another_route_is_another_key(tickets_api: HandlerClient) -> None:
    headers = _key()
    ticket = tickets_api.post(BASE, TICKET, headers=headers)
    assert ticket.status == 201
    entry = {"senderType": "agent", "senderName": "Grace", "message": "On it"}
    added = tickets_api.post(f"{BASE}/{ticket.data['id']}/conversations", entry, headers=headers)
    assert added.status == 201, added.body
    replay = tickets_api.post(f"{BASE}/{ticket.data['id']}/conversations", entry, headers=headers)
    assert replay.body == added.body
    listed = tickets_api.get(f"{BASE}/{ticket.data['id']}/conversations").data
    assert len(listed) == 1


def test_another_tenant_with_the_same_key_is_independent(
    db: DatabaseUrls, tickets_api: HandlerClient, other_tenant: UUID
) -> None:
    headers = {"Idempotency-Key": "order-1234"}
    subject = f"Shared key {uuid4()}"
    mine = tickets_api.post(BASE, {**TICKET, "subject": subject}, headers=headers)
    # another tenant's request with the same key and the same body is its own create, not a replay of mine
    theirs = tickets_api.as_tenant(other_tenant).post(BASE, {**TICKET, "subject": subject}, headers=headers)
    assert mine.status == theirs.status == 201
    assert theirs.data["id"] != mine.data["id"] and theirs.data["userId"] == str(other_tenant)
    assert "Idempotent-Replayed" not in theirs.headers
    # and with another body, not a 422 either
    other = tickets_api.as_tenant(other_tenant).post(
        BASE, {**TICKET, "subject": "x"}, headers={"Idempotency-Key": "k1"}
    )
    assert tickets_api.post(BASE, {**TICKET, "subject": "y"}, headers={"Idempotency-Key": "k1"}).status == 201
    assert other.status == 201
    assert _tickets_with_subject(db, tickets_api.tenant, subject) == 1
    assert _tickets_with_subject(db, other_tenant, subject) == 1


def test_an_expired_key_makes_a_new_create(db: DatabaseUrls, tickets_api: HandlerClient) -> None:
    headers = _key()
    subject = f"Expired {uuid4()}"
    first = tickets_api.post(BASE, {**TICKET, "subject": subject}, headers=headers)
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE user_id = %s AND key = %s",
            (tickets_api.tenant, headers["Idempotency-Key"]),
        )

    second = tickets_api.post(BASE, {**TICKET, "subject": subject}, headers=headers)

    assert second.status == 201 and second.data["id"] != first.data["id"]
    assert "Idempotent-Replayed" not in second.headers
    assert _tickets_with_subject(db, tickets_api.tenant, subject) == 2
    # and the new claim lasts its 24 hours again
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT expires_at - now() FROM idempotency_keys WHERE user_id = %s AND key = %s",
            (tickets_api.tenant, headers["Idempotency-Key"]),
        ).fetchone()
    assert row is not None and timedelta(hours=23) < row[0] <= timedelta(hours=24)


def test_the_sweep_purges_expired_keys_only(db: DatabaseUrls, tickets_api: HandlerClient) -> None:
    kept, gone = _key(), _key()
    tickets_api.post(BASE, TICKET, headers=kept)
    tickets_api.post(BASE, TICKET, headers=gone)
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 minute' WHERE key = %s",
            (gone["Idempotency-Key"],),
        )

    assert purge_expired(datetime.now(UTC) + timedelta(days=3)) >= 1  # a clock ahead purges nothing more

    with psycopg.connect(db.admin) as conn:
        left = {
            r[0] for r in conn.execute("SELECT key FROM idempotency_keys WHERE user_id = %s", (tickets_api.tenant,))
        }
    assert kept["Idempotency-Key"] in left and gone["Idempotency-Key"] not in left


def test_without_the_header_nothing_changes(db: DatabaseUrls, tickets_api: HandlerClient) -> None:
    subject = f"Plain {uuid4()}"
    one = tickets_api.post(BASE, {**TICKET, "subject": subject})
    two = tickets_api.post(BASE, {**TICKET, "subject": subject})
    assert one.status == two.status == 201 and one.data["id"] != two.data["id"]
    assert _tickets_with_subject(db, tickets_api.tenant, subject) == 2
    with psycopg.connect(db.admin) as conn:
        row = conn.execute("SELECT count(*) FROM idempotency_keys WHERE user_id = %s", (tickets_api.tenant,)).fetchone()
    assert row == (0,)


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "naïve", "tab\there"])
def test_a_malformed_or_too_long_key_is_422(db: DatabaseUrls, tickets_api: HandlerClient, key: str) -> None:
    subject = f"Bad key {uuid4()}"
    reply = tickets_api.post(BASE, {**TICKET, "subject": subject}, headers={"Idempotency-Key": key})
    assert reply.status == 422
    assert reply.error["code"] == "validation_error"
    assert reply.error["details"][0]["field"] == "header.Idempotency-Key"
    assert _tickets_with_subject(db, tickets_api.tenant, subject) == 0


def test_the_longest_key_is_accepted(tickets_api: HandlerClient) -> None:
    assert tickets_api.post(BASE, TICKET, headers={"Idempotency-Key": "k" * 255}).status == 201


def test_a_failed_create_releases_the_key(tickets_api: HandlerClient) -> None:
    headers = _key()
    missing = tickets_api.post(
        f"{BASE}/{uuid4()}/conversations", {"senderType": "agent", "senderName": "G", "message": "x"}, headers=headers
    )
    assert missing.status == 404
    ticket = tickets_api.post(BASE, TICKET)
    # an invalid body claims nothing either: the same key then serves a valid request
    assert tickets_api.post(BASE, {**TICKET, "customerEmail": "nope"}, headers=headers).status == 422
    assert tickets_api.post(BASE, TICKET, headers=headers).status == 201
    assert ticket.status == 201


@pytest.mark.parametrize(
    ("module", "path", "body"),
    [
        ("agents", "/api/support/agents", {"agentName": "Grace", "agentEmail": "{uuid}@desk.example"}),
        (
            "canned_responses",
            "/api/support/canned-responses",
            {"responseTitle": "Hi", "responseContent": "Hello", "shortcutKey": "hi{uuid}"},
        ),
        ("widgets", "/api/support/widgets", {"name": "Shop", "allowedOrigins": ["https://shop.example"]}),
    ],
)
def test_other_creates_replay_too(db: DatabaseUrls, tenant: UUID, module: str, path: str, body: dict[str, Any]) -> None:
    app = importlib.import_module(f"functions.{module}.app")
    api = HandlerClient(app.lambda_handler, tenant=tenant)
    unique = uuid4().hex[:8]
    filled = {k: (v.replace("{uuid}", unique) if isinstance(v, str) else v) for k, v in body.items()}
    headers = _key()
    first = api.post(path, filled, headers=headers)
    assert first.status == 201, first.body
    again = api.post(path, filled, headers=headers)
    assert (again.status, again.body) == (first.status, first.body)
    assert again.headers.get("Idempotent-Replayed") == "true"


def _own_tickets_handler(index: int) -> Any:
    """A copy of the tickets function of its own (its resolver keeps the current event: one per environment)."""
    import functions.tickets.app as original

    spec = importlib.util.spec_from_file_location(f"tickets_app_copy_{index}", original.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


@pytest.mark.usefixtures("connection_per_thread")
def test_concurrent_retries_create_exactly_one_row(db: DatabaseUrls, tenant: UUID) -> None:
    clients = [HandlerClient(_own_tickets_handler(i), tenant=tenant) for i in range(6)]
    subject = f"Raced {uuid4()}"
    headers = _key()
    barrier = threading.Barrier(len(clients))
    replies: list[Any] = [None] * len(clients)

    def run(index: int) -> None:
        barrier.wait()
        replies[index] = clients[index].post(BASE, {**TICKET, "subject": subject}, headers=headers)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert _tickets_with_subject(db, tenant, subject) == 1
    created = [r for r in replies if r.status == 201]
    busy = [r for r in replies if r.status == 409]
    assert len(created) + len(busy) == len(clients), [r.status for r in replies]
    assert created and len({r.data["id"] for r in created}) == 1
    assert all(r.error["code"] == "idempotency_in_progress" for r in busy)
    # and once the first is done, every retry answers its result
    again = clients[0].post(BASE, {**TICKET, "subject": subject}, headers=headers)
    assert again.status == 201 and again.data["id"] == created[0].data["id"]


def test_a_chat_message_over_http_is_stored_once(db: DatabaseUrls, tenant: UUID) -> None:
    from functions.chat import app as chat_app
    from tests.integration.test_chat_api import BASE as CHATS
    from tests.integration.test_chat_api import new_agent as chat_agent
    from tests.integration.test_chat_api import new_session

    chat_agent(tenant)
    api = HandlerClient(chat_app.lambda_handler, tenant=tenant)
    headers = _key()
    started = api.post(CHATS, {"visitorId": f"visitor-{uuid4()}", "visitorName": "Ada"}, headers=headers)
    assert started.status == 201, started.body
    assert api.post(CHATS, {"visitorId": "other", "visitorName": "Ada"}, headers=headers).status == 422
    session = new_session(api)
    message = {"senderType": "agent", "senderName": "Grace", "message": "Hello, how can I help?"}
    first = api.post(f"{CHATS}/{session['id']}/messages", message, headers=headers)
    again = api.post(f"{CHATS}/{session['id']}/messages", message, headers=headers)
    assert first.status == again.status == 201, first.body
    assert again.body == first.body
    listed = api.get(f"{CHATS}/{session['id']}/messages").data
    assert [m["message"] for m in listed].count("Hello, how can I help?") == 1
