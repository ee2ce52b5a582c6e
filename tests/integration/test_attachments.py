"""Attachments up to 100 MB (issue 20): upload URLs (presigned S3 POSTs), files uploaded for real over HTTP to moto in
server mode (behind local.s3_post_policy, which enforces the POST policy as S3 does), claims by ticket conversations
and chat messages (HTTP and the WebSocket's service path) checked with HeadObject, presigned downloads, the widget's
visitor routes, and S3 failures. Real PostgreSQL, real handlers and services."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import boto3
import psycopg
import pytest
import requests

from local import ses as local_ses
from local.database import DatabaseUrls
from local.gateway import LambdaContext, build_http_event
from local.s3_post_policy import encode_policy, policy_refusal
from support import aws
from support.auth import Principal, Role
from support.db import tenant_transaction
from support.errors import DomainError
from support.models.chat import ChatMessageCreate
from support.models.tickets import SenderType
from support.services import attachments, chat
from tests.http_events import HandlerClient, Reply, route_key
from tests.integration.test_tickets_api import new_ticket
from tests.integration.test_widgets_api import SHOP, new_widget, visitor_session

BUCKET = "desk-attachments-test"
UPLOAD = "/api/support/attachments/upload-url"
TICKETS = "/api/support/tickets"
CHATS = "/api/support/chat/sessions"
PDF = b"%PDF-1.7\n" + b"x" * 1000 + b"\n%%EOF\n"


@pytest.fixture
def s3_buckets() -> dict[str, str]:
    """The bucket the `s3` fixture (tests/integration/conftest.py) makes in moto."""
    return {"ATTACHMENTS_BUCKET": BUCKET}


@pytest.fixture
def attachments_api(db: DatabaseUrls, tenant: UUID, s3: Any) -> HandlerClient:
    from functions.attachments import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@pytest.fixture
def chat_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.chat import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def upload_url(api: HandlerClient, **fields: Any) -> dict[str, Any]:
    body = {"fileName": "invoice.pdf", "contentType": "application/pdf", "sizeBytes": len(PDF), **fields}
    reply = api.post(UPLOAD, body)
    assert reply.status == 201, reply.body
    return dict(reply.data)


def post_file(upload: dict[str, Any], content: bytes, *, fields: dict[str, str] | None = None) -> requests.Response:
    """The browser's upload: a multipart form to the presigned URL, the policy's fields first, the file last."""
    form = {**upload["fields"], **(fields or {})}
    return requests.post(upload["url"], data=form, files={"file": ("upload.bin", content)}, timeout=30)


def uploaded(api: HandlerClient, content: bytes = PDF, **fields: Any) -> str:
    upload = upload_url(api, sizeBytes=len(content), **fields)
    answer = post_file(upload, content)
    assert answer.status_code == 204, answer.text
    return str(upload["attachmentId"])


def conversation(api: HandlerClient, ticket_id: str, *ids: str, message: str = "See the file") -> Reply:
    return api.post(
        f"{TICKETS}/{ticket_id}/conversations",
        {"senderType": "agent", "senderName": "Grace", "message": message, "attachmentIds": list(ids)},
    )


def conversations_of(api: HandlerClient, ticket_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"{TICKETS}/{ticket_id}/conversations").data)


def attachment_row(db: DatabaseUrls, attachment_id: str) -> dict[str, Any]:
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT state, object_key, conversation_id, chat_message_id FROM attachments WHERE id = %s",
            (attachment_id,),
        ).fetchone()
    assert row is not None
    return {"state": row[0], "object_key": row[1], "conversation_id": row[2], "chat_message_id": row[3]}


class TestUploadAndRead:
    def test_a_file_goes_to_s3_is_claimed_by_a_reply_and_is_read_with_a_short_lived_url(
        self, tickets_api: HandlerClient, attachments_api: HandlerClient, s3: Any, db: DatabaseUrls, tenant: UUID
    ) -> None:
        # Given a ticket and an upload URL for a PDF of it
        ticket = new_ticket(tickets_api)
        upload = upload_url(attachments_api, ticketId=ticket["id"])
        assert upload["fields"]["key"] == f"incoming/{tenant}/{upload['attachmentId']}"
        assert upload["maxSizeBytes"] == len(PDF)
        policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
        assert ["content-length-range", 1, len(PDF)] in policy["conditions"]
        assert {"Content-Type": "application/pdf"} in policy["conditions"]
        assert {"key": upload["fields"]["key"]} in policy["conditions"]
        # When the browser uploads the file straight to S3 and the agent's reply names it
        assert post_file(upload, PDF).status_code == 204
        reply = conversation(tickets_api, ticket["id"], upload["attachmentId"])
        # Then the reply lists the file, the row is claimed and the file kept under files/
        assert reply.status == 201, reply.body
        assert reply.data["attachments"] == [
            {
                "id": upload["attachmentId"],
                "fileName": "invoice.pdf",
                "contentType": "application/pdf",
                "sizeBytes": 1016,
            }
        ]
        row = attachment_row(db, upload["attachmentId"])
        assert row["state"] == "claimed" and str(row["conversation_id"]) == reply.data["id"]
        assert row["object_key"] == f"files/{tenant}/{upload['attachmentId']}"
        assert s3.head_object(Bucket=BUCKET, Key=row["object_key"])["ContentLength"] == len(PDF)
        # And a download URL of 5 minutes serves it as a download with its name
        now = datetime.now(UTC)
        download = attachments_api.get(f"/api/support/attachments/{upload['attachmentId']}")
        assert download.status == 200, download.body
        expires = datetime.fromisoformat(download.data["expiresAt"])
        assert timedelta(minutes=4) < expires - now <= timedelta(minutes=5, seconds=5)
        served = requests.get(download.data["url"], timeout=10)
        assert served.status_code == 200 and served.content == PDF
        assert "invoice.pdf" in served.headers["Content-Disposition"]

    def test_a_file_larger_than_declared_is_refused_by_the_upload_policy(
        self, tickets_api: HandlerClient, attachments_api: HandlerClient
    ) -> None:
        ticket = new_ticket(tickets_api)
        upload = upload_url(attachments_api, ticketId=ticket["id"], sizeBytes=100)
        # One byte over the declared size: S3 refuses it
        answer = post_file(upload, b"x" * 101)
        assert answer.status_code == 400 and "EntityTooLarge" in answer.text
        # A policy edited to allow more no longer matches its signature
        policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
        policy["conditions"] = [c for c in policy["conditions"] if not isinstance(c, list)]
        policy["conditions"].append(["content-length-range", 1, 10_000])
        tampered = post_file(upload, b"x" * 101, fields={"policy": encode_policy(policy)})
        assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.text
        # Exactly the declared size passes
        assert post_file(upload, b"x" * 100).status_code == 204

    def test_another_content_type_than_declared_is_refused_by_the_upload_policy(
        self, tickets_api: HandlerClient, attachments_api: HandlerClient
    ) -> None:
        ticket = new_ticket(tickets_api)
        upload = upload_url(attachments_api, ticketId=ticket["id"])
        answer = post_file(upload, PDF, fields={"Content-Type": "text/html"})
        assert answer.status_code == 403 and "Policy Condition failed" in answer.text

    def test_an_expired_policy_is_refused(self) -> None:
        fields = {"policy": encode_policy({"expiration": "2026-01-01T00:00:00Z", "conditions": []})}
        # (the signature is checked first: sign it as the service would)
        import hashlib
        import hmac

        from local.s3_post_policy import _signing_key

        fields["x-amz-credential"] = "local/20260101/us-east-1/s3/aws4_request"
        key = _signing_key("local", "20260101", "us-east-1", "s3")
        fields["x-amz-signature"] = hmac.new(key, fields["policy"].encode(), hashlib.sha256).hexdigest()
        refusal = policy_refusal(fields, 1, BUCKET, now=datetime(2026, 1, 2, tzinfo=UTC))
        assert refusal is not None and "Policy expired" in refusal[2]

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"sizeBytes": 100 * 1024 * 1024 + 1}, "sizeBytes"),
            ({"sizeBytes": 0}, "sizeBytes"),
            ({"contentType": "text/html"}, "contentType"),
            ({"contentType": "image/svg+xml"}, "contentType"),
            ({"fileName": "../../etc/passwd"}, "fileName"),
        ],
    )
    def test_a_declaration_outside_the_limits_is_a_422_and_writes_nothing(
        self,
        tickets_api: HandlerClient,
        attachments_api: HandlerClient,
        db: DatabaseUrls,
        tenant: UUID,
        fields: dict[str, Any],
        field: str,
    ) -> None:
        ticket = new_ticket(tickets_api)
        body = {"ticketId": ticket["id"], "fileName": "a.pdf", "contentType": "application/pdf", "sizeBytes": 10}
        reply = attachments_api.post(UPLOAD, {**body, **fields})
        assert reply.status == 422, reply.body
        assert any(field in d["field"] for d in reply.error["details"])
        assert pending_count(db, tenant) == 0

    def test_exactly_one_owner_is_named(self, tickets_api: HandlerClient, attachments_api: HandlerClient) -> None:
        body = {"fileName": "a.pdf", "contentType": "application/pdf", "sizeBytes": 10}
        assert attachments_api.post(UPLOAD, body).status == 422
        ticket = new_ticket(tickets_api)
        both = {**body, "ticketId": ticket["id"], "sessionId": str(uuid4())}
        assert attachments_api.post(UPLOAD, both).status == 422


def pending_count(db: DatabaseUrls, tenant: UUID) -> int:
    with psycopg.connect(db.admin) as conn:
        row = conn.execute("SELECT count(*) FROM attachments WHERE user_id = %s", (tenant,)).fetchone()
    assert row is not None
    return int(row[0])


class TestClaims:
    def test_an_object_that_is_not_the_declared_file_is_refused_and_nothing_is_stored(
        self, tickets_api: HandlerClient, attachments_api: HandlerClient, s3: Any, db: DatabaseUrls, tenant: UUID
    ) -> None:
        ticket = new_ticket(tickets_api)
        before = len(conversations_of(tickets_api, ticket["id"]))
        # An object of another size under the key (S3 itself would not take it by the POST; a HeadObject still
        # checks what is there)
        upload = upload_url(attachments_api, ticketId=ticket["id"])
        s3.put_object(Bucket=BUCKET, Key=upload["fields"]["key"], Body=PDF + b"more", ContentType="application/pdf")
        reply = conversation(tickets_api, ticket["id"], upload["attachmentId"])
        assert reply.status == 422 and "not the file declared" in reply.error["message"]
        # Another type
        other = upload_url(attachments_api, ticketId=ticket["id"])
        s3.put_object(Bucket=BUCKET, Key=other["fields"]["key"], Body=PDF, ContentType="text/html")
        assert conversation(tickets_api, ticket["id"], other["attachmentId"]).status == 422
        # Never uploaded
        missing = upload_url(attachments_api, ticketId=ticket["id"])
        reply = conversation(tickets_api, ticket["id"], missing["attachmentId"])
        assert reply.status == 422 and "was not uploaded" in reply.error["message"]
        # Nothing stored, nothing claimed, nothing kept
        assert len(conversations_of(tickets_api, ticket["id"])) == before
        for attachment_id in (upload["attachmentId"], other["attachmentId"], missing["attachmentId"]):
            assert attachment_row(db, attachment_id)["state"] == "pending"
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"files/{tenant}/").get("KeyCount", 0) == 0

    def test_a_file_is_claimed_once_and_only_by_its_own_ticket(
        self, tickets_api: HandlerClient, attachments_api: HandlerClient
    ) -> None:
        ticket, elsewhere = new_ticket(tickets_api), new_ticket(tickets_api)
        attachment_id = uploaded(attachments_api, ticketId=ticket["id"])
        # Another ticket of the desk may not claim it
        assert conversation(tickets_api, elsewhere["id"], attachment_id).status == 422
        assert conversation(tickets_api, ticket["id"], attachment_id).status == 201
        # A second message may not claim it again
        again = conversation(tickets_api, ticket["id"], attachment_id)
        assert again.status == 422 and "already part of a message" in again.error["message"]

    def test_the_old_metadata_attachments_still_work_beside_uploaded_ones(
        self, tickets_api: HandlerClient, attachments_api: HandlerClient
    ) -> None:
        ticket = new_ticket(tickets_api)
        attachment_id = uploaded(attachments_api, ticketId=ticket["id"])
        meta = {
            "fileName": "photo.jpg",
            "contentType": "image/jpeg",
            "sizeBytes": 2048,
            "url": "https://cdn.example/p.jpg",
        }
        reply = tickets_api.post(
            f"{TICKETS}/{ticket['id']}/conversations",
            {
                "senderType": "agent",
                "senderName": "G",
                "message": "x",
                "attachments": [meta],
                "attachmentIds": [attachment_id],
            },
        )
        assert reply.status == 201, reply.body
        assert [a.get("url") for a in reply.data["attachments"]] == ["https://cdn.example/p.jpg", None]
        assert reply.data["attachments"][1]["id"] == attachment_id


class TestTenancy:
    def test_another_tenants_file_and_ticket_are_404(
        self, tickets_api: HandlerClient, attachments_api: HandlerClient, other_tenant: UUID
    ) -> None:
        ticket = new_ticket(tickets_api)
        attachment_id = uploaded(attachments_api, ticketId=ticket["id"])
        assert conversation(tickets_api, ticket["id"], attachment_id).status == 201
        other = attachments_api.as_tenant(other_tenant)
        # Reading it from another tenant: 404, as an unknown id
        assert other.get(f"/api/support/attachments/{attachment_id}").status == 404
        assert other.get(f"/api/support/attachments/{uuid4()}").status == 404
        # An upload URL for another tenant's ticket: 404
        body = {"ticketId": ticket["id"], "fileName": "a.pdf", "contentType": "application/pdf", "sizeBytes": 10}
        assert other.post(UPLOAD, body).status == 404
        # Its own ticket cannot claim the other tenant's file
        other_tickets = tickets_api.as_tenant(other_tenant)
        own = new_ticket(other_tickets)
        assert conversation(other_tickets, own["id"], attachment_id).status == 422

    def test_a_pending_file_is_not_served(self, tickets_api: HandlerClient, attachments_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        attachment_id = uploaded(attachments_api, ticketId=ticket["id"])
        assert attachments_api.get(f"/api/support/attachments/{attachment_id}").status == 404


def new_chat(chat_api: HandlerClient, visitor_id: str | None = None) -> dict[str, Any]:
    reply = chat_api.post(CHATS, {"visitorId": visitor_id or f"visitor-{uuid4()}", "visitorName": "Lena"})
    assert reply.status == 201, reply.body
    return dict(reply.data)


def visitor_of(tenant: UUID, visitor_id: str) -> Principal:
    return Principal(
        tenant_id=tenant, role=Role.VISITOR, subject=f"visitor:{visitor_id}", visitor_id=visitor_id, widget_key="wk"
    )


class TestChatMessages:
    def test_an_agents_message_over_http_claims_its_file(
        self, chat_api: HandlerClient, attachments_api: HandlerClient, tickets_api: HandlerClient, db: DatabaseUrls
    ) -> None:
        session = new_chat(chat_api)
        attachment_id = uploaded(
            attachments_api, sessionId=session["id"], fileName="label.png", contentType="image/png"
        )
        reply = chat_api.post(
            f"{CHATS}/{session['id']}/messages",
            {"senderType": "agent", "message": "Your label", "attachmentIds": [attachment_id]},
        )
        assert reply.status == 201, reply.body
        assert reply.data["attachments"] == [
            {"id": attachment_id, "fileName": "label.png", "contentType": "image/png", "sizeBytes": len(PDF)}
        ]
        assert str(attachment_row(db, attachment_id)["chat_message_id"]) == reply.data["id"]
        listed = chat_api.get(f"{CHATS}/{session['id']}/messages").data
        assert [m["attachments"] for m in listed if m["id"] == reply.data["id"]] == [reply.data["attachments"]]
        # A ticket's file is not a chat's
        ticket_file = uploaded(attachments_api, ticketId=new_ticket(tickets_api)["id"])
        wrong = chat_api.post(
            f"{CHATS}/{session['id']}/messages", {"senderType": "agent", "message": "x", "attachmentIds": [ticket_file]}
        )
        assert wrong.status == 422

    def test_a_visitors_websocket_send_claims_its_file_and_a_resend_answers_the_same_message(
        self, chat_api: HandlerClient, attachments_api: HandlerClient, tenant: UUID
    ) -> None:
        visitor_id = f"visitor-{uuid4()}"
        session = new_chat(chat_api, visitor_id)
        attachment_id = uploaded(attachments_api, sessionId=session["id"])
        visitor = visitor_of(tenant, visitor_id)
        data = ChatMessageCreate(
            sender_type=SenderType.CUSTOMER, message="the invoice", attachment_ids=[UUID(attachment_id)]
        )
        first = chat.add_chat_message(visitor, UUID(session["id"]), data, client_message_id="c-1")
        again = chat.add_chat_message(visitor, UUID(session["id"]), data, client_message_id="c-1")
        assert first.id == again.id and [a["id"] for a in first.attachments] == [attachment_id]
        assert again.attachments == first.attachments
        # Another message with the same file: refused, nothing stored
        other = ChatMessageCreate(sender_type=SenderType.CUSTOMER, message="x", attachment_ids=[UUID(attachment_id)])
        with pytest.raises(DomainError) as refused:
            chat.add_chat_message(visitor, UUID(session["id"]), other, client_message_id="c-2")
        assert refused.value.status == 409
        messages = chat_api.get(f"{CHATS}/{session['id']}/messages").data
        assert [m["clientMessageId"] for m in messages if m["senderType"] == "customer"] == ["c-1"]

    def test_another_visitors_chat_is_refused_before_s3_is_asked(
        self, chat_api: HandlerClient, attachments_api: HandlerClient, tenant: UUID
    ) -> None:
        session = new_chat(chat_api)
        attachment_id = uploaded(attachments_api, sessionId=session["id"])
        stranger = visitor_of(tenant, f"visitor-{uuid4()}")
        data = ChatMessageCreate(sender_type=SenderType.CUSTOMER, message="x", attachment_ids=[UUID(attachment_id)])
        with pytest.raises(DomainError) as refused:
            chat.add_chat_message(stranger, UUID(session["id"]), data, client_message_id="s-1")
        assert refused.value.status in {403, 404}

    def test_the_database_refuses_a_claim_of_a_file_no_longer_pending_and_rolls_the_message_back(
        self, chat_api: HandlerClient, attachments_api: HandlerClient, db: DatabaseUrls, tenant: UUID
    ) -> None:
        # A race the service's check cannot see: the file is claimed between the check and the send
        session = new_chat(chat_api)
        attachment_id = uploaded(attachments_api, sessionId=session["id"])
        reply = chat_api.post(
            f"{CHATS}/{session['id']}/messages",
            {"senderType": "agent", "message": "first", "attachmentIds": [attachment_id]},
        )
        assert reply.status == 201
        with pytest.raises(psycopg.errors.RaiseException), tenant_transaction(tenant) as cur:
            cur.execute(
                "SELECT * FROM chat_send_message_with_attachments(%s, %s, 'admin', NULL, NULL, NULL, 'sub', 'agent', "
                "'A', 'second', NULL, NULL, NULL, %s, %s)",
                (tenant, session["id"], [attachment_id], ["files/x"]),
            )
        texts = [m["message"] for m in chat_api.get(f"{CHATS}/{session['id']}/messages").data]
        assert "second" not in texts and "first" in texts


def widget_route(path: str, body: Any, origin: str = SHOP) -> Reply:
    from functions.widgets import app

    event = build_http_event(
        route_key=route_key("POST", path),
        method="POST",
        raw_path=path,
        headers=[("content-type", "application/json"), ("origin", origin)],
        body=json.dumps(body).encode(),
        claims=None,
    )
    result = app.lambda_handler(
        event, LambdaContext(function_name="WidgetsFunction", memory_limit_in_mb=512, timeout_seconds=10)
    )
    return Reply(status=result["statusCode"], body=json.loads(result["body"]), headers=result.get("headers") or {})


class TestVisitors:
    def test_a_visitor_uploads_to_and_reads_from_their_own_chat_only(
        self, db: DatabaseUrls, tenant: UUID, s3: Any, chat_api: HandlerClient
    ) -> None:
        from functions.widgets import app as widgets_app

        widget = new_widget(HandlerClient(widgets_app.lambda_handler, tenant=tenant))
        session = visitor_session({"widgetKey": widget["widgetKey"]}).data
        chat_session = new_chat(chat_api, session["visitorId"])
        stranger_chat = new_chat(chat_api)
        tokens = {"widgetKey": widget["widgetKey"], "resumeToken": session["resumeToken"]}
        declared = {"fileName": "photo.jpg", "contentType": "image/jpeg", "sizeBytes": len(PDF)}
        # Their own chat: an upload URL, the file uploaded for real
        reply = widget_route(
            "/api/support/widget/attachments/upload-url", {**tokens, **declared, "sessionId": chat_session["id"]}
        )
        assert reply.status == 201, reply.body
        assert post_file(reply.data, PDF).status_code == 204
        attachment_id = reply.data["attachmentId"]
        # Another visitor's chat of the desk: 403; an unknown chat: 404
        other = widget_route(
            "/api/support/widget/attachments/upload-url", {**tokens, **declared, "sessionId": stranger_chat["id"]}
        )
        assert other.status == 403
        unknown = widget_route(
            "/api/support/widget/attachments/upload-url", {**tokens, **declared, "sessionId": str(uuid4())}
        )
        assert unknown.status == 404
        # A forged token or a foreign origin: refused
        forged = {**tokens, "resumeToken": session["resumeToken"][:-4] + "AAAA"}
        assert (
            widget_route(
                "/api/support/widget/attachments/upload-url", {**forged, **declared, "sessionId": chat_session["id"]}
            ).status
            == 403
        )
        assert (
            widget_route(
                "/api/support/widget/attachments/upload-url",
                {**tokens, **declared, "sessionId": chat_session["id"]},
                origin="https://evil.example",
            ).status
            == 403
        )
        # The visitor's message claims it; the visitor reads it back
        visitor = visitor_of(tenant, session["visitorId"])
        data = ChatMessageCreate(sender_type=SenderType.CUSTOMER, message="photo", attachment_ids=[UUID(attachment_id)])
        chat.add_chat_message(visitor, UUID(chat_session["id"]), data, client_message_id="v-1")
        download = widget_route(f"/api/support/widget/attachments/{attachment_id}/download-url", tokens)
        assert download.status == 200, download.body
        assert requests.get(download.data["url"], timeout=10).content == PDF
        # A file of another visitor's chat: 403
        from functions.attachments import app as attachments_app

        staff = HandlerClient(attachments_app.lambda_handler, tenant=tenant)
        strangers_file = uploaded(staff, sessionId=stranger_chat["id"])
        chat_api.post(
            f"{CHATS}/{stranger_chat['id']}/messages",
            {"senderType": "agent", "message": "f", "attachmentIds": [strangers_file]},
        )
        assert widget_route(f"/api/support/widget/attachments/{strangers_file}/download-url", tokens).status == 403


class TestS3Faults:
    def test_no_credentials_to_sign_with_is_a_503_and_writes_nothing(
        self,
        tickets_api: HandlerClient,
        attachments_api: HandlerClient,
        db: DatabaseUrls,
        tenant: UUID,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Any,
    ) -> None:
        ticket = new_ticket(tickets_api)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        # A new execution environment: the client (and boto3's default session) built without them
        monkeypatch.setattr(aws, "_clients", {})
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        reply = attachments_api.post(
            UPLOAD, {"ticketId": ticket["id"], "fileName": "a.pdf", "contentType": "application/pdf", "sizeBytes": 10}
        )
        assert reply.status == 503 and reply.error["code"] == "storage_unavailable"
        assert pending_count(db, tenant) == 0

    def test_s3_failing_on_the_check_is_a_502_the_message_is_not_stored_and_a_resend_succeeds(
        self,
        tickets_api: HandlerClient,
        attachments_api: HandlerClient,
        db: DatabaseUrls,
        moto: local_ses.LocalSes,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        ticket = new_ticket(tickets_api)
        attachment_id = uploaded(attachments_api, ticketId=ticket["id"])
        before = len(conversations_of(tickets_api, ticket["id"]))
        # When S3 is unreachable as the reply claims the file
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{local_ses._free_port()}")
        reply = conversation(tickets_api, ticket["id"], attachment_id)
        # Then a clear 502, nothing half-written: no message, the file still pending
        assert reply.status == 502 and reply.error["code"] == "storage_error"
        assert len(conversations_of(tickets_api, ticket["id"])) == before
        assert attachment_row(db, attachment_id)["state"] == "pending"
        # And once S3 is back, the same request succeeds
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)
        assert conversation(tickets_api, ticket["id"], attachment_id).status == 201

    def test_a_failed_message_transaction_leaves_no_kept_copy(
        self, tickets_api: HandlerClient, attachments_api: HandlerClient, s3: Any, db: DatabaseUrls, tenant: UUID
    ) -> None:
        # The copy to files/ happens before the transaction; a closed ticket refuses the message in it
        ticket = new_ticket(tickets_api)
        attachment_id = uploaded(attachments_api, ticketId=ticket["id"])
        assert tickets_api.patch(f"{TICKETS}/{ticket['id']}", {"status": "closed"}).status == 200
        assert conversation(tickets_api, ticket["id"], attachment_id).status == 409
        assert attachment_row(db, attachment_id)["state"] == "pending"
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"files/{tenant}/").get("KeyCount", 0) == 0


class TestForPrivacyAndRetention:
    def test_a_tickets_files_are_listed_and_deleted_with_their_objects(
        self, tickets_api: HandlerClient, attachments_api: HandlerClient, s3: Any, tenant: UUID
    ) -> None:
        ticket = new_ticket(tickets_api)
        claimed = uploaded(attachments_api, ticketId=ticket["id"])
        assert conversation(tickets_api, ticket["id"], claimed).status == 201
        pending = uploaded(attachments_api, ticketId=ticket["id"])
        with tenant_transaction(tenant) as cur:
            files = attachments.keys_for_ticket(cur, tenant, UUID(ticket["id"]))
            assert {str(f.attachment_id) for f in files} == {claimed, pending}
            assert attachments.object_body(files[0].object_key) == PDF
            assert attachments.delete_objects(cur, tenant, files) == 2
        with tenant_transaction(tenant) as cur:
            assert attachments.keys_for_ticket(cur, tenant, UUID(ticket["id"])) == []
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"files/{tenant}/").get("KeyCount", 0) == 0
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"incoming/{tenant}/").get("KeyCount", 0) == 0

    def test_an_erasure_deletes_the_customers_files_and_leaves_anothers(
        self, db: DatabaseUrls, tickets_api: HandlerClient, attachments_api: HandlerClient, s3: Any, tenant: UUID
    ) -> None:
        from support.models.privacy import PrivacyRequestCreate
        from support.services import privacy

        # Given a customer's ticket with a file in its thread (and one uploaded but never sent), and another's
        mine = new_ticket(tickets_api, customerEmail="erase.files@example.com")
        sent = uploaded(attachments_api, ticketId=mine["id"])
        assert conversation(tickets_api, mine["id"], sent).status == 201
        unsent = uploaded(attachments_api, ticketId=mine["id"])
        theirs = new_ticket(tickets_api, customerEmail="keep.files@example.com")
        kept = uploaded(attachments_api, ticketId=theirs["id"])
        assert conversation(tickets_api, theirs["id"], kept).status == 201

        # When the admin erases the customer
        admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="dpo")
        erasure = privacy.request_erasure(admin, PrivacyRequestCreate(customer_email="erase.files@example.com"))
        assert privacy.get_erasure(admin, erasure.id).state == "done"

        # Then their files are gone, rows and both S3 objects, their thread names none, and the other's file stays
        with psycopg.connect(db.admin) as conn:
            rows = {str(r[0]) for r in conn.execute("SELECT id FROM attachments WHERE user_id = %s", (tenant,))}
        assert rows == {kept}
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
        assert not [k for k in keys if sent in k or unsent in k]
        assert any(kept in k for k in keys)
        assert all(entry["attachments"] == [] for entry in conversations_of(tickets_api, mine["id"]))

    def test_the_retention_step_deletes_the_files_of_the_tickets_it_deletes(
        self, db: DatabaseUrls, tickets_api: HandlerClient, attachments_api: HandlerClient, s3: Any, tenant: UUID
    ) -> None:
        from functions.settings import app as settings_app
        from support.services import retention
        from tests.integration.test_retention import age
        from tests.integration.test_tickets_api import resolve

        # Given a desk that deletes tickets closed 30 days ago, an old closed ticket with a file and an open one
        settings = HandlerClient(settings_app.lambda_handler, tenant=tenant)
        policy = {"tickets": {"mode": "delete", "days": 30}, "chats": {"mode": "keep", "days": None}}
        assert settings.put("/api/support/settings/retention", policy).status == 200
        old = new_ticket(tickets_api)
        gone = uploaded(attachments_api, ticketId=old["id"])
        assert conversation(tickets_api, old["id"], gone).status == 201
        resolve(tickets_api, old["id"])
        age(db, tenant, [old["id"]], 400)
        open_ticket = new_ticket(tickets_api)
        stays = uploaded(attachments_api, ticketId=open_ticket["id"])
        assert conversation(tickets_api, open_ticket["id"], stays).status == 201

        # When the retention step runs
        retention.sweep_step(datetime.now(UTC))

        # Then the old ticket's file is gone from S3 with it, and the open ticket's stays
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
        assert not [k for k in keys if gone in k]
        assert any(stays in k for k in keys)


class TestUnclaimedUploads:
    def test_the_uploads_step_deletes_pending_rows_past_the_day_and_their_objects_in_each_tenant(
        self,
        db: DatabaseUrls,
        tickets_api: HandlerClient,
        attachments_api: HandlerClient,
        s3: Any,
        tenant: UUID,
        other_tenant: UUID,
    ) -> None:
        from functions.workflow_sweep import app as sweep

        # Given, in two tenants, uploads no message claimed: past the lifecycle's day and the margin (one of them never
        # uploaded: no object to delete), and one just at the end of its day; and a claimed file as old
        now = datetime.now(UTC) - timedelta(minutes=1)  # the sweep's clock
        old = now - attachments.UNCLAIMED_AFTER - timedelta(minutes=1)
        fresh = now - attachments.INCOMING_LIFETIME
        ticket = new_ticket(tickets_api)
        stale = uploaded(attachments_api, ticketId=ticket["id"])
        never_uploaded = upload_url(attachments_api, ticketId=ticket["id"])["attachmentId"]
        recent = uploaded(attachments_api, ticketId=ticket["id"])
        claimed = uploaded(attachments_api, ticketId=ticket["id"])
        assert conversation(tickets_api, ticket["id"], claimed).status == 201
        other_tickets, other_files = tickets_api.as_tenant(other_tenant), attachments_api.as_tenant(other_tenant)
        other_ticket = new_ticket(other_tickets)
        other_stale = uploaded(other_files, ticketId=other_ticket["id"])
        other_recent = uploaded(other_files, ticketId=other_ticket["id"])
        created = {stale: old, never_uploaded: old, claimed: old, other_stale: old, recent: fresh, other_recent: fresh}
        with psycopg.connect(db.admin) as conn:  # the rows' age (created_at is the database's clock)
            for attachment_id, at in created.items():
                conn.execute("UPDATE attachments SET created_at = %s WHERE id = %s", (at, attachment_id))

        # When the workflow sweep's `uploads` step runs with that clock
        result = sweep.run_steps(now, [step for step in sweep.STEPS if step[0] == "uploads"])

        # Then the old pending rows are gone in both tenants, with their uploads in S3; the fresh ones and the claimed
        # file stay, with their objects
        assert result["ok"] and result["steps"]["uploads"] >= 3
        with psycopg.connect(db.admin) as conn:
            left = {
                str(row[0]) for row in conn.execute("SELECT id FROM attachments WHERE id = ANY(%s)", (list(created),))
            }
        assert left == {recent, claimed, other_recent}

        def keys(owner: UUID, prefix: str = "incoming") -> set[str]:
            listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/{owner}/").get("Contents", [])
            return {item["Key"].rsplit("/", 1)[1] for item in listed}

        assert stale not in keys(tenant) and other_stale not in keys(other_tenant)
        assert {recent, claimed} <= keys(tenant) and other_recent in keys(other_tenant)
        assert keys(tenant, "files") == {claimed}
        assert attachment_row(db, claimed)["state"] == "claimed"
        # and a second run finds nothing more of these tenants
        again = sweep.run_steps(now, [step for step in sweep.STEPS if step[0] == "uploads"])
        assert again["ok"]
        with psycopg.connect(db.admin) as conn:
            assert conn.execute("SELECT count(*) FROM attachments WHERE id = ANY(%s)", (list(created),)).fetchone() == (
                3,
            )

    def test_a_run_stops_at_its_budget_and_the_next_goes_on(
        self,
        db: DatabaseUrls,
        tickets_api: HandlerClient,
        attachments_api: HandlerClient,
        s3: Any,
        tenant: UUID,
        other_tenant: UUID,
    ) -> None:
        # Given two tenants with unclaimed uploads past the lifecycle's day and the margin
        now = datetime.now(UTC) - timedelta(minutes=1)
        old = now - attachments.UNCLAIMED_AFTER - timedelta(minutes=1)
        ids = []
        for owner in (tenant, other_tenant):
            api, ticket = attachments_api.as_tenant(owner), new_ticket(tickets_api.as_tenant(owner))
            ids += [upload_url(api, ticketId=ticket["id"])["attachmentId"] for _ in range(2)]
        with psycopg.connect(db.admin) as conn:
            conn.execute("UPDATE attachments SET created_at = %s WHERE id = ANY(%s)", (old, ids))

        def due() -> dict[UUID, int]:  # every tenant's due rows (the session's other tests leave some too)
            with psycopg.connect(db.admin) as conn:
                rows = conn.execute(
                    """SELECT user_id, count(*) FROM attachments
                       WHERE state = 'pending' AND created_at < %s GROUP BY user_id""",
                    (now - attachments.UNCLAIMED_AFTER,),
                )
                return {row[0]: row[1] for row in rows}

        before = due()
        assert {tenant, other_tenant} <= set(before)
        # When a run's time is up before its first tenant: it deletes nothing
        assert attachments.sweep_unclaimed(now, max_seconds=0) == 0
        assert due() == before
        # When a run may work on one tenant: one tenant's rows go, the others' stay
        deleted = attachments.sweep_unclaimed(now, max_tenants=1)
        after = due()
        changed = {t for t in before if after.get(t) != before[t]}
        assert len(changed) == 1 and set(after) <= set(before)
        assert deleted == sum(before.values()) - sum(after.values()) > 0
        # Then the next runs go on where it stopped, until both tenants' are gone
        for _ in range(len(before)):
            attachments.sweep_unclaimed(now, max_tenants=1)
        assert not {tenant, other_tenant} & set(due())
