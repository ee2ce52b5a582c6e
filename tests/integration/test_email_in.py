"""Email in (issue 17): SES's receipt event through the email function, the raw message read from S3, the ticket made
or the reply threaded, automatic mail ignored, bad mail rejected, every message stored once, the files in S3 and the
original retrievable.

Real PostgreSQL, real handlers and services; moto in server mode (local.ses, as `make run` runs it) stands in for S3.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local import ses as local_ses
from local.database import DatabaseUrls
from local.gateway import LambdaContext
from local.sample_events import ses_receipt_event
from tests.http_events import HandlerClient
from tests.integration.test_chat_concurrency import connection_per_thread, run_together
from tests.integration.test_tickets_api import BASE, resolve

__all__ = ["connection_per_thread"]  # the fixture, used by name below

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "email"
BUCKET = "desk-inbound-test"


def context() -> LambdaContext:
    return LambdaContext(function_name="EmailInboundFunction", memory_limit_in_mb=1024, timeout_seconds=60)


@pytest.fixture
def s3(moto: local_ses.LocalSes, moto_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)
    monkeypatch.setenv("INBOUND_EMAIL_BUCKET", BUCKET)
    monkeypatch.delenv("INBOUND_EMAIL_MAX_BYTES", raising=False)
    client = boto3.client("s3", endpoint_url=moto.endpoint, region_name=local_ses.REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def desk(db: DatabaseUrls, tenant: UUID, s3: Any) -> str:
    """The tenant's receiving address (and a sender, so that its notices are enqueued)."""
    from functions.settings import app

    address = f"desk-{tenant.hex[:12]}@inbound.desk.example"
    reply = HandlerClient(app.lambda_handler, tenant=tenant).put(
        "/api/support/settings/email", {"inboundAddresses": [address], "fromAddress": "support@shop.example"}
    )
    assert reply.status == 200, reply.body
    return address


def deliver(s3: Any, raw: bytes, to: str, *, ses_id: str | None = None, **verdicts: str) -> dict[str, Any]:
    """What SES does: the raw message into the bucket under its SES id, then the function invoked with the receipt."""
    from functions.email_in import app

    ses_id = ses_id or uuid4().hex
    s3.put_object(Bucket=BUCKET, Key=f"inbound/{ses_id}", Body=raw)
    event = ses_receipt_event(
        raw,
        message_id=ses_id,
        recipients=[to],
        received_at=datetime.now(UTC),
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:EmailInboundFunction",
    )
    for name, status in verdicts.items():
        event["Records"][0]["ses"]["receipt"][name] = {"status": status}
    answer = app.lambda_handler(event, context())
    assert answer["ok"], answer
    (result,) = answer["results"]
    return dict(result)


def mail(
    subject: str,
    body: str,
    *,
    sender: str = "Ada Lovelace <ada@customer.example>",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    extra: str = "",
) -> bytes:
    headers = [
        f"From: {sender}",
        "To: Shop Support <support@shop.example>",
        f"Subject: {subject}",
        "Date: Mon, 7 Dec 2026 10:00:00 +0000",
        f"Message-ID: <{message_id or uuid4().hex + '@customer.example'}>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if in_reply_to:
        headers += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    if extra:
        headers.append(extra)
    return ("\n".join(headers) + "\n\n" + body).encode("utf-8")


def tickets_api(tenant: UUID) -> HandlerClient:
    from functions.tickets import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def thread(tenant: UUID, ticket_id: str) -> list[dict[str, Any]]:
    reply = tickets_api(tenant).get(f"{BASE}/{ticket_id}/conversations")
    assert reply.status == 200, reply.body
    return list(reply.data)


def rows(db: DatabaseUrls, tenant: UUID, table: str) -> list[dict[str, Any]]:
    with psycopg.connect(db.admin, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            f"SELECT * FROM {table} WHERE user_id = %s ORDER BY 1".encode(),
            (tenant,),
        ).fetchall()


# --- each client's message through the function -----------------------------------------------------------------

CLIENT_SAMPLES = {
    # file: (sender, a phrase of the new text, a phrase of the quoted history that must be cut)
    "gmail_reply.eml": ("jane.doe@gmail.com", "send a replacement instead", "wrote:"),
    "outlook_reply.eml": ("t.berger@berger-bau.example", "return label", "We are sorry the jacket does not fit"),
    "outlook_html_original_message.eml": ("maria.rossi@outlook.example", "voucher", "Original Message"),
    "apple_mail_inline_image.eml": ("ravi@patel.example", "burner", "wrote:"),
    "plain_text_mutt.eml": ("ravi@patel.example", "KS-2231-0097", "wrote:"),
    "iso_8859_1_german.eml": ("juergen.mueller@gmx.example", "Größe L habe ich heute", "schrieb"),
    "pdf_attachment.eml": ("lena.fischer@posteo.example", "VAT number is missing", ""),
}


@pytest.mark.parametrize("name", sorted(CLIENT_SAMPLES))
def test_each_clients_mail_becomes_a_ticket_with_its_new_text(
    db: DatabaseUrls, tenant: UUID, desk: str, s3: Any, name: str
) -> None:
    from support.mail.inbound import InboundEmail, parse, reference_in_subject, strip_reply_prefixes
    from support.mail.text import new_text

    raw = (SAMPLES / name).read_bytes()
    parsed = parse(raw, max_bytes=10 * 1024 * 1024)
    assert isinstance(parsed, InboundEmail)
    sender, phrase, quoted = CLIENT_SAMPLES[name]

    result = deliver(s3, raw, desk)

    # a reply to a ticket this desk never had (#10482 and its Message-IDs are another desk's): a new ticket
    assert result["outcome"] == "created" and result["reference"] == "#1001", result
    ticket = tickets_api(tenant).get(f"{BASE}/{result['ticketId']}").data
    assert ticket["channel"] == "email" and ticket["customerEmail"] == sender and ticket["contactId"]
    # the subject without reply prefixes, and without another desk's bracketed reference
    assert ticket["subject"] == strip_reply_prefixes(parsed.subject).replace(
        f"[#{reference_in_subject(parsed.subject)}] ", ""
    )
    (entry,) = thread(tenant, result["ticketId"])
    assert entry["id"] == result["conversationId"]
    assert entry["senderType"] == "customer" and entry["senderEmail"] == sender and not entry["isInternal"]
    assert entry["message"] == new_text(parsed.text).strip() == ticket["description"]
    assert phrase in entry["message"]
    if quoted:
        assert quoted not in entry["message"] and quoted in parsed.text
    # the desk tells the customer it received it (the outbox's `received` notice), once
    outbox = rows(db, tenant, "email_outbox")
    assert [(o["kind"], o["recipient"]) for o in outbox] == [("received", sender)]
    (stored,) = rows(db, tenant, "inbound_emails")
    assert stored["message_id"] == parsed.message_id and stored["outcome"] == "created"
    assert stored["s3_key"] == f"inbound/{result['sesMessageId']}" and stored["size_bytes"] == len(raw)
    assert stored["recipient"] == desk and stored["sender"] == sender


def test_the_iso_8859_1_mail_keeps_its_umlauts(tenant: UUID, desk: str, s3: Any) -> None:
    result = deliver(s3, (SAMPLES / "iso_8859_1_german.eml").read_bytes(), desk)
    ticket = tickets_api(tenant).get(f"{BASE}/{result['ticketId']}").data
    assert ticket["customerName"] == "Jürgen Müller"
    assert ticket["subject"] == "Rücksendung der Größe L"
    assert any(ch in ticket["description"] for ch in "äöüß"), ticket["description"]


def test_an_attachment_goes_to_s3_with_its_metadata_on_the_message(tenant: UUID, desk: str, s3: Any) -> None:
    from support.mail.inbound import InboundEmail, parse

    raw = (SAMPLES / "pdf_attachment.eml").read_bytes()
    parsed = parse(raw, max_bytes=10 * 1024 * 1024)
    assert isinstance(parsed, InboundEmail)
    (pdf,) = parsed.attachments

    result = deliver(s3, raw, desk)

    (entry,) = thread(tenant, result["ticketId"])
    (attachment,) = entry["attachments"]
    assert attachment["fileName"] == pdf.filename and attachment["contentType"] == "application/pdf"
    assert attachment["sizeBytes"] == pdf.size and attachment["inline"] is False
    assert attachment["s3Bucket"] == BUCKET
    assert attachment["s3Key"].startswith(f"attachments/{tenant}/{result['sesMessageId']}/1-")
    stored = s3.get_object(Bucket=BUCKET, Key=attachment["s3Key"])
    assert stored["Body"].read() == pdf.payload and stored["ContentType"] == "application/pdf"


def test_an_inline_image_is_kept_with_its_content_id(tenant: UUID, desk: str, s3: Any) -> None:
    result = deliver(s3, (SAMPLES / "apple_mail_inline_image.eml").read_bytes(), desk)
    (entry,) = thread(tenant, result["ticketId"])
    (image,) = entry["attachments"]
    assert image["inline"] is True and image["contentId"] and image["contentType"].startswith("image/")
    assert s3.get_object(Bucket=BUCKET, Key=image["s3Key"])["ContentLength"] == image["sizeBytes"] > 0


# --- automatic and bad mail ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"), [("bounce_mailer_daemon.eml", None), ("auto_reply_vacation.eml", "auto_submitted")]
)
def test_bounces_and_auto_replies_are_ignored_without_a_ticket_or_an_answer(
    db: DatabaseUrls, tenant: UUID, desk: str, s3: Any, name: str, reason: str | None
) -> None:
    result = deliver(s3, (SAMPLES / name).read_bytes(), desk)

    assert result["outcome"] == "ignored_automatic" and result["ticketId"] is None
    assert reason is None or result["reason"] == reason
    assert rows(db, tenant, "support_tickets") == [] and rows(db, tenant, "email_outbox") == []
    (stored,) = rows(db, tenant, "inbound_emails")
    assert stored["outcome"] == "ignored_automatic" and stored["reason"] == result["reason"]


def test_an_auto_reply_to_a_ticket_never_lands_on_it(db: DatabaseUrls, tenant: UUID, desk: str, s3: Any) -> None:
    first = deliver(s3, mail("My tent leaks", "Water comes in at the seams."), desk)
    (received,) = rows(db, tenant, "email_outbox")
    auto = mail(
        "Auto: out of office", "I am away.", in_reply_to=received["message_id"], extra="Auto-Submitted: auto-replied"
    )

    assert deliver(s3, auto, desk)["outcome"] == "ignored_automatic"
    assert len(thread(tenant, first["ticketId"])) == 1
    assert len(rows(db, tenant, "email_outbox")) == 1


@pytest.mark.parametrize("how", ["from_address", "inbound_address", "outbox_header"])
def test_the_desks_own_mail_coming_back_is_ignored(
    db: DatabaseUrls, tenant: UUID, desk: str, s3: Any, how: str
) -> None:
    # Given the desk's own mail arriving at its inbound address (an agent's reply copied to it, a forwarding loop)
    sender = {"from_address": "Shop Support <support@shop.example>", "inbound_address": desk}.get(how, "x@y.example")
    extra = "X-Support-Ticket: 1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b" if how == "outbox_header" else ""
    result = deliver(s3, mail("Re: your request", "We are on it.", sender=sender, extra=extra), desk)
    # Then it opens nothing and answers nothing
    assert result["outcome"] == "ignored_automatic" and result["reason"] == "from_the_desk"
    assert rows(db, tenant, "support_tickets") == [] and rows(db, tenant, "email_outbox") == []


def test_a_message_over_the_size_limit_is_kept_and_rejected_with_the_reason(
    db: DatabaseUrls, tenant: UUID, desk: str, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOUND_EMAIL_MAX_BYTES", "2000")
    raw = mail("Photos of the damage", "x" * 5000, message_id="big-1@customer.example")

    result = deliver(s3, raw, desk)

    assert result["outcome"] == "rejected" and result["reason"] == f"too_large: {len(raw)} bytes, the limit is 2000"
    assert rows(db, tenant, "support_tickets") == []
    (stored,) = rows(db, tenant, "inbound_emails")
    assert stored["message_id"] == "big-1@customer.example" and stored["sender"] == "ada@customer.example"
    assert s3.get_object(Bucket=BUCKET, Key=stored["s3_key"])["Body"].read() == raw  # kept as received


def test_an_unparseable_message_is_kept_and_rejected(db: DatabaseUrls, tenant: UUID, desk: str, s3: Any) -> None:
    raw = b"\x00\x01\x02 this is no mail at all"
    result = deliver(s3, raw, desk)
    assert result["outcome"] == "rejected" and result["reason"].startswith("unparseable"), result
    (stored,) = rows(db, tenant, "inbound_emails")
    assert stored["message_id"] == f"ses:{result['sesMessageId']}" and stored["ticket_id"] is None
    assert rows(db, tenant, "support_tickets") == []


def test_a_message_ses_found_a_virus_in_is_rejected(db: DatabaseUrls, tenant: UUID, desk: str, s3: Any) -> None:
    result = deliver(s3, mail("Invoice", "Open the attachment."), desk, virusVerdict="FAIL")
    assert result["outcome"] == "rejected" and result["reason"] == "ses_virus_verdict"
    assert rows(db, tenant, "support_tickets") == []


def test_mail_for_an_address_no_desk_receives_at_is_refused_and_stores_nothing(
    db: DatabaseUrls, tenant: UUID, desk: str, s3: Any
) -> None:
    raw = mail("Hello", "Anyone there?")
    result = deliver(s3, raw, f"nobody-{uuid4().hex[:8]}@inbound.desk.example")
    assert result["outcome"] == "unknown_recipient" and result["tenantId"] is None
    assert rows(db, tenant, "inbound_emails") == []


def test_an_event_of_another_shape_is_refused() -> None:
    from functions.email_in import app

    answer = app.lambda_handler({"Records": [{"eventSource": "aws:sqs"}]}, context())
    assert answer["ok"] is False and "eventSource" in answer["error"]


# --- threading ----------------------------------------------------------------------------------------------------


def test_a_reply_threads_by_in_reply_to_with_its_new_text_and_sends_nothing(
    db: DatabaseUrls, tenant: UUID, desk: str, s3: Any
) -> None:
    first = deliver(s3, mail("My tent leaks", "Water comes in at the seams."), desk)
    (received,) = rows(db, tenant, "email_outbox")
    assert received["message_id"].startswith(f"<ticket-{first['ticketId']}.")
    reply = mail(
        "Re: something else entirely",
        "Here are the photos you asked for.\n\nOn Mon, Shop Support wrote:\n> We received your request",
        sender="Ada L. <ADA@customer.example>",
        in_reply_to=received["message_id"],
    )

    result = deliver(s3, reply, desk)

    assert result["outcome"] == "threaded" and result["ticketId"] == first["ticketId"]
    assert result["reference"] == first["reference"]
    entries = thread(tenant, first["ticketId"])
    assert [e["message"] for e in entries][-1] == "Here are the photos you asked for."
    assert entries[-1]["senderType"] == "customer" and entries[-1]["id"] == result["conversationId"]
    assert len(rows(db, tenant, "email_outbox")) == 1  # a customer's message sends no mail: no loop
    assert len(rows(db, tenant, "support_tickets")) == 1


def test_a_reply_threads_by_the_reference_in_its_subject_from_the_ticket_customer(
    db: DatabaseUrls, tenant: UUID, desk: str, s3: Any
) -> None:
    first = deliver(s3, mail("Stove does not ignite", "It clicks but no flame."), desk)

    result = deliver(s3, mail(f"Re: [{first['reference']}] Stove does not ignite", "Tried a new cartridge."), desk)

    assert result["outcome"] == "threaded" and result["ticketId"] == first["ticketId"]
    assert thread(tenant, first["ticketId"])[-1]["message"] == "Tried a new cartridge."


def test_a_reference_from_a_stranger_opens_a_ticket_of_their_own(
    db: DatabaseUrls, tenant: UUID, desk: str, s3: Any
) -> None:
    first = deliver(s3, mail("Refund for order 55", "Please refund me."), desk)

    guessed = mail(f"Re: [{first['reference']}] Refund", "Refund me instead!", sender="Mallory <m@evil.example>")
    result = deliver(s3, guessed, desk)

    assert result["outcome"] == "created" and result["ticketId"] != first["ticketId"]
    assert [e["message"] for e in thread(tenant, first["ticketId"])] == ["Please refund me."]


def test_the_contacts_other_email_may_answer_by_reference(db: DatabaseUrls, tenant: UUID, desk: str, s3: Any) -> None:
    first = deliver(s3, mail("Broken zip", "The zip broke."), desk)
    ticket = tickets_api(tenant).get(f"{BASE}/{first['ticketId']}").data
    with psycopg.connect(db.admin) as conn:  # the contact's second address, as a merge or an agent's edit adds it
        conn.execute(
            "INSERT INTO contact_identities (user_id, kind, value, contact_id) VALUES (%s, 'email', %s, %s)",
            (tenant, "ada@work.example", ticket["contactId"]),
        )

    result = deliver(s3, mail(f"Re: {first['reference']} zip", "From work.", sender="ada@work.example"), desk)

    assert result["outcome"] == "threaded" and result["ticketId"] == first["ticketId"]


@pytest.mark.parametrize("status", ["waiting_customer", "resolved"])
def test_a_reply_reopens_a_ticket_waiting_for_the_customer_or_resolved(
    tenant: UUID, desk: str, s3: Any, status: str
) -> None:
    first = deliver(s3, mail("Wrong size", "I need an M."), desk)
    api = tickets_api(tenant)
    if status == "resolved":
        resolve(api, first["ticketId"])
    else:
        assert api.patch(f"{BASE}/{first['ticketId']}", {"status": status}).status == 200

    result = deliver(s3, mail(f"Re: [{first['reference']}] Wrong size", "Still the wrong size."), desk)

    assert result["outcome"] == "threaded"
    ticket = api.get(f"{BASE}/{first['ticketId']}").data
    assert ticket["status"] == "open" and ticket["resolvedAt"] is None and ticket["resolutionTime"] is None


def test_a_reply_to_a_closed_ticket_opens_a_new_one(db: DatabaseUrls, tenant: UUID, desk: str, s3: Any) -> None:
    first = deliver(s3, mail("Lost parcel", "Where is it?"), desk)
    assert tickets_api(tenant).post(f"{BASE}/{first['ticketId']}/close").status == 200

    result = deliver(s3, mail(f"Re: [{first['reference']}] Lost parcel", "Still lost."), desk)

    assert result["outcome"] == "created" and result["ticketId"] != first["ticketId"]


# --- stored once ------------------------------------------------------------------------------------------------


def test_the_same_message_delivered_twice_is_stored_once(db: DatabaseUrls, tenant: UUID, desk: str, s3: Any) -> None:
    raw = mail("Double", "Sent once, delivered twice.", message_id="twice@customer.example")

    first = deliver(s3, raw, desk)
    second = deliver(s3, raw, desk)

    assert first["outcome"] == second["outcome"] == "created"
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert second["ticketId"] == first["ticketId"] and second["inboundId"] == first["inboundId"]
    assert len(rows(db, tenant, "inbound_emails")) == 1 and len(rows(db, tenant, "support_tickets")) == 1
    assert len(thread(tenant, first["ticketId"])) == 1 and len(rows(db, tenant, "email_outbox")) == 1


def test_two_concurrent_deliveries_of_one_message_store_it_once(
    db: DatabaseUrls, tenant: UUID, desk: str, s3: Any, connection_per_thread: None
) -> None:
    raw = mail("Race", "Delivered by two servers at once.", message_id="race@customer.example")
    deliver(s3, mail("Warm up", "first"), desk)  # each thread's connection and the S3 client exist before the race

    results = run_together([lambda: deliver(s3, raw, desk), lambda: deliver(s3, raw, desk)])

    assert all(isinstance(r, dict) for r in results), results
    assert sorted(r["duplicate"] for r in results) == [False, True]
    assert results[0]["ticketId"] == results[1]["ticketId"]
    assert len(rows(db, tenant, "support_tickets")) == 2  # the warm-up's and the race's
    assert len(rows(db, tenant, "inbound_emails")) == 2


# --- the original -------------------------------------------------------------------------------------------------


def test_staff_get_the_original_of_an_emailed_message_and_no_one_else(
    tenant: UUID, other_tenant: UUID, desk: str, s3: Any
) -> None:
    raw = (SAMPLES / "gmail_reply.eml").read_bytes()
    result = deliver(s3, raw, desk)
    path = f"{BASE}/{result['ticketId']}/conversations/{result['conversationId']}/original"

    reply = tickets_api(tenant).get(path)

    assert reply.status == 200, reply.body
    assert reply.data["contentType"] == "message/rfc822" and reply.data["sizeBytes"] == len(raw)
    assert 0 < reply.data["expiresIn"] <= 900
    with urllib.request.urlopen(reply.data["url"], timeout=10) as answer:  # noqa: S310 - moto on 127.0.0.1
        assert answer.read() == raw
    # an agent of the desk too; another tenant and a message that did not come by email: 404
    assert HandlerClient(tickets_api(tenant).handler, tenant=tenant, role="agent").get(path).status == 200
    assert tickets_api(other_tenant).get(path).status == 404
    note = tickets_api(tenant).post(
        f"{BASE}/{result['ticketId']}/conversations", {"senderType": "agent", "senderName": "Sam", "message": "Hi"}
    )
    assert tickets_api(tenant).get(f"{BASE}/{result['ticketId']}/conversations/{note.data['id']}/original").status == (
        404
    )


def test_the_sample_receipt_event_through_the_function(db: DatabaseUrls, tenant: UUID, s3: Any) -> None:
    """events/email/ses_receipt.json as `sam local invoke -e` sends it, its message stored where SES stores it."""
    from functions.email_in import app
    from functions.settings import app as settings_app

    event = json.loads((SAMPLES / "ses_receipt.json").read_text())
    (address,) = event["Records"][0]["ses"]["receipt"]["recipients"]
    ses_id = event["Records"][0]["ses"]["mail"]["messageId"]
    settings = HandlerClient(settings_app.lambda_handler, tenant=tenant)
    assert settings.put("/api/support/settings/email", {"inboundAddresses": [address]}).status == 200
    try:
        s3.put_object(Bucket=BUCKET, Key=f"inbound/{ses_id}", Body=(SAMPLES / "gmail_reply.eml").read_bytes())
        answer = app.lambda_handler(event, context())
    finally:  # the address is the sample's: free it for the next run
        assert settings.put("/api/support/settings/email", {"inboundAddresses": []}).status == 200
    assert answer["ok"] is True
    (result,) = answer["results"]
    assert (result["outcome"], result["sesMessageId"], result["tenantId"]) == ("created", ses_id, str(tenant))
    assert tickets_api(tenant).get(f"{BASE}/{result['ticketId']}").data["customerEmail"] == "jane.doe@gmail.com"


def test_a_mail_runs_the_automation_rules_after_its_commit(db: DatabaseUrls, tenant: UUID, desk: str, s3: Any) -> None:
    """The email function starts the automation run itself (support.services.automations.kick): the new ticket's
    ticket_created event and a reply's customer_replied are not left for the every-minute sweep."""
    from functions.automations import app as automations_app
    from support.db import tenant_transaction

    rules = HandlerClient(automations_app.lambda_handler, tenant=tenant)
    for existing in rules.get("/api/support/automations").data:
        assert rules.delete(f"/api/support/automations/{existing['id']}").status == 200
    for event, action in (("ticket_created", "set_priority"), ("customer_replied", "add_internal_note")):
        value = "urgent" if action == "set_priority" else "the customer wrote again"
        body = {"name": event, "event": event, "conditions": {"all": []}, "actions": [{"type": action, "value": value}]}
        assert rules.post("/api/support/automations", body).status == 201

    first = mail("Where is my order?", "It has not come.", message_id="first@customer.example")
    created = deliver(s3, first, desk)
    reply = mail("Re: Where is my order?", "Still nothing.", in_reply_to="<first@customer.example>")
    deliver(s3, reply, desk)

    with tenant_transaction(tenant) as cur:
        cur.execute(
            "SELECT count(*) AS n FROM automation_events WHERE user_id = %s AND processed_at IS NULL", (tenant,)
        )
        assert cur.fetchone() == {"n": 0}
    ticket = tickets_api(tenant).get(f"{BASE}/{created['ticketId']}").data
    assert ticket["priority"] == "urgent"
    assert "the customer wrote again" in [e["message"] for e in thread(tenant, created["ticketId"])]
