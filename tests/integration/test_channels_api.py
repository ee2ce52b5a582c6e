"""Social and other channels: the admin's channels and secrets, and the public, HMAC-signed messages route a
connector posts to (real handlers, the real PostgreSQL)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from local.gateway import LambdaContext, build_http_event
from support.db.connection import SET_TENANT
from support.services import channels
from tests.http_events import HandlerClient, Reply, route_key
from tests.integration.test_chat_concurrency import connection_per_thread

__all__ = ["connection_per_thread"]  # the fixture, used by name below

BASE = "/api/support/channels"


@pytest.fixture
def channels_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.channels import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def new_channel(api: HandlerClient, name: str = "WhatsApp", kind: str = "whatsapp") -> dict[str, Any]:
    reply = api.post(BASE, {"name": name, "kind": kind})
    assert reply.status == 201, reply.body
    return dict(reply.data)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def message(**fields: Any) -> dict[str, Any]:
    base = {
        "externalSenderId": "+4915112345678",
        "senderName": "Grace Hopper",
        "text": "Hello, my order #77 has not arrived yet. Can you check where it is?",
        "externalMessageId": f"wamid.{uuid4().hex}",
    }
    return base | fields


def post_message(
    channel_id: Any,
    secret: str | None,
    body: Any,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
    raw: bytes | None = None,
) -> Reply:
    """The public route as a connector calls it: no Authorization; the body signed with `secret`."""
    from functions.channels import app

    payload = raw if raw is not None else json.dumps(body).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    headers = [("content-type", "application/json"), ("x-signature-timestamp", str(ts))]
    if signature is None and secret is not None:
        signature = sign(secret, ts, payload)
    if signature is not None:
        headers.append(("x-signature", signature))
    path = f"{BASE}/{channel_id}/messages"
    event = build_http_event(
        route_key=route_key("POST", path), method="POST", raw_path=path, headers=headers, body=payload, claims=None
    )
    result = app.lambda_handler(event, LambdaContext("ChannelsFunction", 512, 10))
    return Reply(result["statusCode"], json.loads(result["body"]), result.get("headers") or {})


def thread(tickets_api: HandlerClient, ticket_id: str) -> list[dict[str, Any]]:
    return list(tickets_api.get(f"/api/support/tickets/{ticket_id}/conversations").data)


# --- the admin's channels -----------------------------------------------------------------------------------------


def test_a_channel_answers_its_secret_once_and_never_again(channels_api: HandlerClient, db: DatabaseUrls) -> None:
    created = new_channel(channels_api)
    assert created["kind"] == "whatsapp" and created["disabledAt"] is None
    assert created["secret"].startswith("chs_") and len(created["secret"]) == 68
    listed = channels_api.get(BASE)
    one = channels_api.get(f"{BASE}/{created['id']}")
    assert [c["id"] for c in listed.data] == [created["id"]]
    for answer in (listed.body, one.body):
        assert created["secret"] not in json.dumps(answer)
        assert "secret" not in json.dumps(answer).lower().replace("previoussecretvaliduntil", "")
    # the runtime role cannot read any secret, even its own tenant's
    with psycopg.connect(db.app) as conn:
        conn.execute(SET_TENANT, (str(channels_api.tenant),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT secret FROM support_channel_secrets")


def test_only_an_admin_manages_channels_and_bad_input_is_422(channels_api: HandlerClient) -> None:
    agent = channels_api.as_tenant(channels_api.tenant, role="agent")
    assert agent.post(BASE, {"name": "X", "kind": "whatsapp"}).status == 403
    channel = new_channel(channels_api)
    assert agent.get(BASE).status == 200
    assert agent.post(f"{BASE}/{channel['id']}/rotate-secret").status == 403
    assert agent.delete(f"{BASE}/{channel['id']}").status == 403
    assert channels_api.post(BASE, {"name": "X", "kind": "pigeon"}).status == 422
    assert channels_api.post(BASE, {"name": "", "kind": "other"}).status == 422
    assert channels_api.get(f"{BASE}/{uuid4()}").status == 404


def test_the_hmac_in_the_database_is_rfc_2104s(db: DatabaseUrls) -> None:
    # RFC 4231 test case 2, a key longer than the block, and an empty message
    cases = [
        (b"Jefe", b"what do ya want for nothing?"),
        (b"k" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"),
        (b"chs_" + b"a" * 64, b""),
    ]
    with psycopg.connect(db.owner) as conn:
        for key, data in cases:
            row = conn.execute("SELECT channel_hmac_sha256(%s, %s)", (key, data)).fetchone()
            assert row is not None and bytes(row[0]) == hmac.new(key, data, hashlib.sha256).digest()


# --- deliveries -------------------------------------------------------------------------------------------------


def test_a_new_sender_opens_a_social_ticket_and_the_next_message_threads_onto_it(
    channels_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    channel = new_channel(channels_api)
    first = post_message(channel["id"], channel["secret"], message())
    assert first.status == 200, first.body
    assert first.data["createdTicket"] is True and first.data["duplicate"] is False
    assert first.data["reference"].startswith("#")
    ticket = tickets_api.get(f"/api/support/tickets/{first.data['ticketId']}").data
    assert ticket["channel"] == "social"
    assert ticket["customerName"] == "Grace Hopper"
    assert ticket["subject"] == "Hello, my order #77 has not arrived yet. Can you check where it is?"
    assert ticket["contactId"] is not None
    contact = HandlerClient(_contacts_handler(), tenant=channels_api.tenant).get(
        f"/api/support/contacts/{ticket['contactId']}"
    )
    assert {"kind": "social", "value": "+4915112345678", "scope": channel["id"]} in [
        {k: i.get(k) for k in ("kind", "value", "scope")} for i in contact.data["identities"]
    ]

    second = post_message(channel["id"], channel["secret"], message(text="Any news?"))
    assert second.status == 200, second.body
    assert second.data["ticketId"] == first.data["ticketId"] and second.data["createdTicket"] is False
    entries = thread(tickets_api, first.data["ticketId"])
    assert [(e["senderType"], e["message"], e["isInternal"]) for e in entries] == [("customer", "Any news?", False)]
    assert entries[0]["id"] == second.data["conversationId"]


def _contacts_handler() -> Any:
    from functions.contacts import app

    return app.lambda_handler


def test_a_long_first_message_makes_a_subject_of_its_first_words() -> None:
    text = "I ordered the blue jacket in size M three weeks ago and it still has not arrived, tracking says nothing"
    subject = channels.subject_of(text)
    assert subject.endswith("…") and len(subject) <= channels.SUBJECT_MAX_CHARS + 1
    assert text.startswith(subject[:-1]) and not subject[:-1].endswith(" ")


def test_a_reply_reopens_a_waiting_or_resolved_ticket_and_a_closed_one_gives_a_new_ticket(
    channels_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    channel = new_channel(channels_api)
    first = post_message(channel["id"], channel["secret"], message()).data
    path = f"/api/support/tickets/{first['ticketId']}"
    for status in ("waiting_customer", "resolved"):
        assert tickets_api.patch(path, {"status": status}).status == 200
        again = post_message(channel["id"], channel["secret"], message(text=f"still here ({status})"))
        assert again.data["ticketId"] == first["ticketId"]
        reopened = tickets_api.get(path).data
        assert reopened["status"] == "open" and reopened["resolvedAt"] is None
    assert tickets_api.post(f"{path}/close").status == 200
    after_close = post_message(channel["id"], channel["secret"], message(text="A new question"))
    assert after_close.data["createdTicket"] is True
    assert after_close.data["ticketId"] != first["ticketId"]
    assert tickets_api.get(path).data["status"] == "closed"
    # another sender of the same channel has their own ticket
    other = post_message(channel["id"], channel["secret"], message(externalSenderId="+15550001111"))
    assert other.data["createdTicket"] is True and other.data["ticketId"] != after_close.data["ticketId"]


def test_a_duplicate_external_message_id_is_stored_once(
    channels_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    channel = new_channel(channels_api)
    body = message()
    first = post_message(channel["id"], channel["secret"], body)
    # the connector's retry: signed anew (a later timestamp), the same external id
    again = post_message(channel["id"], channel["secret"], body, timestamp=int(time.time()) + 1)
    assert again.status == 200, again.body
    assert again.data["duplicate"] is True and again.data["ticketId"] == first.data["ticketId"]
    assert again.data["reference"] == first.data["reference"]
    follow = message(text="second words")
    post_message(channel["id"], channel["secret"], follow)
    post_message(channel["id"], channel["secret"], follow, timestamp=int(time.time()) - 1)
    assert [e["message"] for e in thread(tickets_api, first.data["ticketId"])] == ["second words"]


@pytest.mark.usefixtures("connection_per_thread")  # one connection per thread, as one per execution environment
def test_two_concurrent_deliveries_of_one_external_id_store_it_once(
    channels_api: HandlerClient, tickets_api: HandlerClient, db: DatabaseUrls
) -> None:
    channel = new_channel(channels_api)
    body = message()
    now = int(time.time())
    replies: list[Reply] = []
    barrier = threading.Barrier(2)

    def deliver(ts: int) -> None:
        barrier.wait()
        replies.append(post_message(channel["id"], channel["secret"], body, timestamp=ts))

    workers = [threading.Thread(target=deliver, args=(ts,)) for ts in (now, now - 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(r.status for r in replies) == [200, 200], [r.body for r in replies]
    assert sorted(r.data["duplicate"] for r in replies) == [False, True]
    assert len({r.data["ticketId"] for r in replies}) == 1
    with psycopg.connect(db.admin) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM support_tickets WHERE user_id = %s AND channel = 'social'),"
            " (SELECT count(*) FROM channel_messages WHERE user_id = %s)",
            (channels_api.tenant, channels_api.tenant),
        ).fetchone()
    assert counts == (1, 1)


@pytest.mark.usefixtures("connection_per_thread")
def test_a_new_senders_two_concurrent_messages_open_one_ticket(
    channels_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    channel = new_channel(channels_api)
    replies: list[Reply] = []
    barrier = threading.Barrier(2)

    def deliver(text: str) -> None:
        barrier.wait()
        replies.append(post_message(channel["id"], channel["secret"], message(externalSenderId="fb-42", text=text)))

    workers = [threading.Thread(target=deliver, args=(t,)) for t in ("one", "two")]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert [r.status for r in replies] == [200, 200], [r.body for r in replies]
    assert len({r.data["ticketId"] for r in replies}) == 1
    assert sorted(r.data["createdTicket"] for r in replies) == [False, True]


def test_bad_signatures_unknown_disabled_and_foreign_channels_get_one_401(
    channels_api: HandlerClient, other_tenant: UUID
) -> None:
    channel = new_channel(channels_api)
    theirs = new_channel(channels_api.as_tenant(other_tenant), name="Their WhatsApp")
    disabled = new_channel(channels_api, name="Old Instagram", kind="instagram")
    assert channels_api.delete(f"{BASE}/{disabled['id']}").status == 200
    body = message()
    refusals = {
        "wrong secret": post_message(channel["id"], "chs_" + "0" * 64, body),
        "tampered body": post_message(
            channel["id"],
            None,
            None,
            raw=json.dumps(body | {"text": "other"}).encode(),
            signature=sign(channel["secret"], int(time.time()), json.dumps(body).encode()),
        ),
        "no signature": post_message(channel["id"], None, body),
        "not v1": post_message(channel["id"], None, body, signature="v0=" + "ab" * 32),
        "unknown channel": post_message(uuid4(), channel["secret"], body),
        "malformed channel id": post_message("not-a-uuid", channel["secret"], body),
        # another tenant's channel with our secret, and our channel with theirs
        "their channel, our secret": post_message(theirs["id"], channel["secret"], body),
        "our channel, their secret": post_message(channel["id"], theirs["secret"], body),
        "disabled": post_message(disabled["id"], disabled["secret"], body),
    }
    assert {k: r.status for k, r in refusals.items()} == dict.fromkeys(refusals, 401)
    assert {r.error["message"] for r in refusals.values()} == {channels.NOT_ADMITTED}
    # the same delivery correctly signed goes through: the refusals were the signature's
    assert post_message(channel["id"], channel["secret"], body).status == 200
    # nothing of theirs was touched
    their_tickets = HandlerClient(_tickets_handler(), tenant=other_tenant).get("/api/support/tickets")
    assert their_tickets.data == []


def _tickets_handler() -> Any:
    from functions.tickets import app

    return app.lambda_handler


def test_an_old_timestamp_and_a_replay_are_refused(channels_api: HandlerClient) -> None:
    channel = new_channel(channels_api)
    body = message()
    old = post_message(channel["id"], channel["secret"], body, timestamp=int(time.time()) - 301)
    future = post_message(channel["id"], channel["secret"], body, timestamp=int(time.time()) + 301)
    assert (old.status, future.status) == (401, 401)
    assert old.error["message"] == channels.TOO_OLD
    ts = int(time.time())
    signature = sign(channel["secret"], ts, json.dumps(body).encode())
    first = post_message(channel["id"], None, body, timestamp=ts, signature=signature)
    replay = post_message(channel["id"], None, body, timestamp=ts, signature=signature)
    assert first.status == 200, first.body
    assert replay.status == 401 and replay.error["message"] == channels.REPLAYED


def test_a_delivery_that_fails_may_be_sent_again_with_the_same_signature(channels_api: HandlerClient) -> None:
    channel = new_channel(channels_api)
    ts = int(time.time())
    bad = json.dumps(message(text="")).encode()
    signature = sign(channel["secret"], ts, bad)
    first = post_message(channel["id"], None, None, raw=bad, timestamp=ts, signature=signature)
    assert first.status == 422 and first.error["details"][0]["field"] == "body.text"
    # the failed delivery stored nothing, not even its signature: the same bytes get the same 422, not a replay
    again = post_message(channel["id"], None, None, raw=bad, timestamp=ts, signature=signature)
    assert again.status == 422


def test_bad_input_is_422_or_400_never_5xx(channels_api: HandlerClient) -> None:
    channel = new_channel(channels_api)
    cases: dict[str, bytes] = {
        "not json": b"{nope",
        "not an object": b"[1, 2]",
        "missing text": json.dumps({"externalSenderId": "x", "externalMessageId": "y"}).encode(),
        "unknown field": json.dumps(message(extra=1)).encode(),
        "nul": json.dumps(message(text="a\u0000b")).encode(),
        "blank sender": json.dumps(message(externalSenderId="  ")).encode(),
        "long id": json.dumps(message(externalMessageId="x" * 201)).encode(),
        "too big": json.dumps(message(text="x" * 60_000)).encode(),
        "bad sentAt": json.dumps(message(sentAt="yesterday")).encode(),
    }
    statuses = {
        name: post_message(channel["id"], channel["secret"], None, raw=raw).status for name, raw in cases.items()
    }
    assert statuses == {
        "not json": 400,
        "not an object": 422,
        "missing text": 422,
        "unknown field": 422,
        "nul": 422,
        "blank sender": 422,
        "long id": 422,
        "too big": 413,
        "bad sentAt": 422,
    }


def test_a_rotated_secret_overlaps_the_old_one(channels_api: HandlerClient, db: DatabaseUrls) -> None:
    channel = new_channel(channels_api)
    rotated = channels_api.post(f"{BASE}/{channel['id']}/rotate-secret")
    assert rotated.status == 200, rotated.body
    new_secret = rotated.data["secret"]
    assert new_secret != channel["secret"] and rotated.data["previousSecretValidUntil"] is not None
    # both are accepted during the overlap
    assert post_message(channel["id"], channel["secret"], message()).status == 200
    assert post_message(channel["id"], new_secret, message()).status == 200
    assert channels_api.get(f"{BASE}/{channel['id']}").data["previousSecretValidUntil"] is not None
    assert channels_api.get(BASE).data[0]["previousSecretValidUntil"] is not None
    # a second rotation ends the first secret's overlap at once; the second one overlaps
    third = channels_api.post(f"{BASE}/{channel['id']}/rotate-secret").data["secret"]
    assert post_message(channel["id"], channel["secret"], message()).status == 401
    assert post_message(channel["id"], new_secret, message()).status == 200
    assert post_message(channel["id"], third, message()).status == 200
    # once the overlap is over (moved into the past as the owner), only the newest is accepted
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            "UPDATE support_channel_secrets SET expires_at = now() - interval '1 second'"
            " WHERE channel_id = %s AND expires_at IS NOT NULL",
            (channel["id"],),
        )
    assert post_message(channel["id"], new_secret, message()).status == 401
    assert post_message(channel["id"], third, message()).status == 200
    # a disabled channel's secret cannot be rotated
    assert channels_api.delete(f"{BASE}/{channel['id']}").status == 200
    assert channels_api.post(f"{BASE}/{channel['id']}/rotate-secret").status == 409
    assert post_message(channel["id"], third, message()).status == 401


def test_another_tenants_channel_is_404_to_the_admin_routes(channels_api: HandlerClient, other_tenant: UUID) -> None:
    channel = new_channel(channels_api)
    them = channels_api.as_tenant(other_tenant)
    assert them.get(f"{BASE}/{channel['id']}").status == 404
    assert them.delete(f"{BASE}/{channel['id']}").status == 404
    assert them.post(f"{BASE}/{channel['id']}/rotate-secret").status == 404
    assert them.get(BASE).data == []
    assert channels_api.get(f"{BASE}/{channel['id']}").data["disabledAt"] is None


def test_a_flood_of_one_channel_is_429_with_retry_after(channels_api: HandlerClient, db: DatabaseUrls) -> None:
    channel = new_channel(channels_api)
    # the bucket drained as the owner (the flood itself would take 120 deliveries)
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            "INSERT INTO rate_limit_counters (user_id, scope, subject, tokens, admitted, refilled_at)"
            " VALUES (%s, %s, %s, 0, false, now())",
            (channels_api.tenant, channels.CHANNEL_MESSAGES.scope, channel["id"]),
        )
    refused = post_message(channel["id"], channel["secret"], message())
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    # another channel of the tenant is not held up
    other = new_channel(channels_api, name="Facebook", kind="facebook")
    assert post_message(other["id"], other["secret"], message()).status == 200


def test_a_social_ticket_sends_no_email(
    channels_api: HandlerClient, tickets_api: HandlerClient, db: DatabaseUrls
) -> None:
    from functions.settings import app as settings_app

    settings = {"inboundAddresses": [f"desk-{uuid4().hex}@shop.example"], "fromAddress": "desk@shop.example"}
    assert (
        HandlerClient(settings_app.lambda_handler, tenant=channels_api.tenant)
        .put("/api/support/settings/email", settings)
        .status
        == 200
    )
    channel = new_channel(channels_api)
    delivered = post_message(channel["id"], channel["secret"], message()).data
    reply = {"senderType": "agent", "senderName": "Ada", "message": "On its way"}
    assert tickets_api.post(f"/api/support/tickets/{delivered['ticketId']}/conversations", reply).status == 201
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT count(*) FROM email_outbox WHERE ticket_id = %s", (delivered["ticketId"],)
        ).fetchone()
    assert row == (0,)


def test_the_runtime_role_reaches_secrets_only_through_the_functions(
    channels_api: HandlerClient, other_tenant: UUID, db: DatabaseUrls
) -> None:
    channel = new_channel(channels_api)
    post_message(channel["id"], channel["secret"], message())

    def as_app(tenant: UUID | None, statement: str, params: Any = ()) -> Any:
        with psycopg.connect(db.app, autocommit=True) as conn, conn.transaction(force_rollback=True):
            if tenant is not None:
                conn.execute(SET_TENANT, (str(tenant),))
            return conn.execute(statement.encode(), params).fetchall()

    def outcome(tenant: UUID | None, statement: str, params: Any = ()) -> str:
        try:
            return f"ok: {as_app(tenant, statement, params)}"
        except psycopg.Error as exc:
            return type(exc).__name__

    mine = channels_api.tenant
    # no privilege on the owner's tables, whatever the tenant setting; the HMAC itself is internal
    for table in ("support_channel_secrets", "channel_signatures_seen"):
        assert outcome(mine, f"SELECT * FROM {table}") == "InsufficientPrivilege"
        assert outcome(mine, f"DELETE FROM {table}") == "InsufficientPrivilege"
    assert outcome(mine, "SELECT channel_hmac_sha256('k', 'm')") == "InsufficientPrivilege"
    # another tenant can neither rotate nor learn about this channel's secret
    store = "SELECT channel_secret_store(%s, %s, interval '1 day')"
    assert outcome(other_tenant, store, (channel["id"], "chs_" + "f" * 64)) == "ok: [(False,)]"
    assert outcome(other_tenant, "SELECT channel_secret_overlap_ends(%s)", (channel["id"],)) == "ok: [(None,)]"
    # without a tenant setting the store fails closed
    assert outcome(None, store, (channel["id"], "chs_" + "f" * 64)) == "UndefinedObject"
    # the check answers the tenant, never the secret
    ts = int(time.time())
    body = json.dumps(message()).encode()
    mac = bytes.fromhex(sign(channel["secret"], ts, body)[3:])
    admit = "SELECT * FROM channel_delivery_admit(%s, %s, %s, %s, 300)"
    rows = as_app(None, admit, (channel["id"], ts, body, mac))
    assert rows == [(mine, "whatsapp", False)]
    # and the channel's row is the only other tenant's row the delivery route reads before it binds the tenant
    assert as_app(other_tenant, "SELECT id FROM support_channels") == []


def test_the_sample_events_run_through_the_handler(db: DatabaseUrls) -> None:
    from functions.channels import app
    from local import sample_events
    from tests.http_events import invoke_sample_event

    events = sample_events.EVENTS_DIR / "channels"
    answers = {
        path.name: invoke_sample_event(app.lambda_handler, path, "ChannelsFunction")
        for path in sorted(events.glob("*.json"))
    }
    statuses = {name: answer["statusCode"] for name, answer in answers.items()}
    # the sample tenant has no channel of the sample's id; the delivery's timestamp is long past
    assert statuses == {
        "create.json": 201,
        "list.json": 200,
        "get.json": 404,
        "disable.json": 404,
        "rotate_secret.json": 404,
        "post_message.json": 401,
    }
    assert json.loads(answers["post_message.json"]["body"])["error"]["message"] == channels.TOO_OLD
    # and its signature is the documented scheme's over its exact body
    event = json.loads((events / "post_message.json").read_text())
    expected = sign(
        sample_events.CHANNEL_SAMPLE_SECRET, int(event["headers"]["x-signature-timestamp"]), event["body"].encode()
    )
    assert event["headers"]["x-signature"] == expected


def test_the_documented_python_signs_and_verifies_as_the_desk_does(channels_api: HandlerClient) -> None:
    from local.template import REPO

    page = (REPO / "docs" / "api.md").read_text()
    section = page.split("### The signature", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code.split("\nbody = ", 1)[0], namespace)  # noqa: S102 (the page's own functions, not the request)
    channel = new_channel(channels_api)
    body = json.dumps(message()).encode()
    headers = namespace["sign"](channel["secret"], body)
    reply = post_message(
        channel["id"],
        None,
        None,
        raw=body,
        timestamp=int(headers["X-Signature-Timestamp"]),
        signature=headers["X-Signature"],
    )
    assert reply.status == 200, reply.body
    verify = namespace["verify"]
    assert verify(channel["secret"], body, headers["X-Signature-Timestamp"], headers["X-Signature"])
    assert not verify(channel["secret"], body + b" ", headers["X-Signature-Timestamp"], headers["X-Signature"])
    old = str(int(time.time()) - 301)
    assert not verify(channel["secret"], body, old, namespace["sign"](channel["secret"], body, int(old))["X-Signature"])
