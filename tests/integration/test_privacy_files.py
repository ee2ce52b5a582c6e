"""A privacy export carries the customer's files (issues 19 and 20): the files their tickets' and chats' messages
claimed, their mail's files and the raw mail, each copied into the export bucket beside the document, listed in the
document and in the GET's answer with its own presigned GET; another customer's files never; a rerun copies again
harmlessly; an erasure deletes earlier exports whole, their copies with them.

Real PostgreSQL, the real handlers and services; moto in server mode (local.ses, as `make run` runs it) for S3, files
uploaded for real through presigned POSTs (tests/integration/test_attachments.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
import requests

from local.database import DatabaseUrls
from tests.http_events import HandlerClient
from tests.integration.test_attachments import conversation, upload_url
from tests.integration.test_privacy import EXPORT_BUCKET, INBOUND_BUCKET, Customer, make_customer

ATTACHMENTS_BUCKET = "desk-attachments-privacy-test"
BASE = "/api/support/privacy"
CHATS = "/api/support/chat/sessions"


@pytest.fixture
def s3_buckets() -> dict[str, str]:
    """The buckets the `s3` fixture (tests/integration/conftest.py) makes in moto."""
    return {
        "ATTACHMENTS_BUCKET": ATTACHMENTS_BUCKET,
        "PRIVACY_EXPORT_BUCKET": EXPORT_BUCKET,
        "INBOUND_EMAIL_BUCKET": INBOUND_BUCKET,
    }


@pytest.fixture
def storage(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 with the buckets, the settings read again (the export bucket is a setting), the jobs run here."""
    from support.config import get_settings

    monkeypatch.delenv("PRIVACY_FUNCTION_NAME", raising=False)
    get_settings.cache_clear()
    yield s3
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def privacy_api(db: DatabaseUrls, tenant: UUID, storage: Any) -> HandlerClient:
    from functions.privacy import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@pytest.fixture
def apis(db: DatabaseUrls, tenant: UUID, storage: Any) -> dict[str, HandlerClient]:
    from functions.attachments import app as attachments_app
    from functions.chat import app as chat_app
    from functions.tickets import app as tickets_app

    return {
        name: HandlerClient(handler, tenant=tenant)
        for name, handler in (
            ("attachments", attachments_app.lambda_handler),
            ("chat", chat_app.lambda_handler),
            ("tickets", tickets_app.lambda_handler),
        )
    }


@dataclass
class Files:
    """A customer of make_customer (tickets, thread entries, mail and its files in S3, a chat) with files uploaded
    for real to a ticket's thread and to the chat: the bytes of each file the export must carry, by what names it."""

    customer: Customer
    uploads: dict[str, bytes] = field(default_factory=dict)  # attachment id: bytes
    mail: dict[str, bytes] = field(default_factory=dict)  # S3 key in the mail bucket: bytes


def upload(api: HandlerClient, content: bytes, **fields: Any) -> str:
    """A file through its presigned POST, as the browser sends it; its attachment id."""
    answer = upload_url(api, sizeBytes=len(content), **fields)
    form = {**answer["fields"]}
    posted = requests.post(answer["url"], data=form, files={"file": ("upload.bin", content)}, timeout=30)
    assert posted.status_code == 204, posted.text
    return str(answer["attachmentId"])


def customer_with_files(
    db: DatabaseUrls, s3: Any, tenant: UUID, apis: dict[str, HandlerClient], name: str, *, tag: str
) -> Files:
    customer = make_customer(db, s3, tenant, name, tag=tag)
    made = Files(customer)
    for number, key in enumerate(customer.s3_keys):  # the mail's files and the raw mail, in the mail bucket
        if key.startswith("attachments/"):  # each its own bytes (make_customer's are the same for everyone)
            s3.put_object(Bucket=INBOUND_BUCKET, Key=key, Body=f"%PDF {name}'s mailed invoice {number}".encode())
        made.mail[key] = s3.get_object(Bucket=INBOUND_BUCKET, Key=key)["Body"].read()
    # A PDF in the thread of their first ticket, sent by the agent
    ticket = sorted(customer.ids["tickets"])[1]  # the second is still open (the first was resolved and rated)
    pdf = b"%PDF-1.7\n" + f"{name}'s invoice".encode() + b"\n%%EOF\n"
    pdf_id = upload(apis["attachments"], pdf, ticketId=ticket, fileName=f"Invoice for {name}.pdf")
    assert conversation(apis["tickets"], ticket, pdf_id).status == 201
    made.uploads[pdf_id] = pdf
    # A photo in their chat, sent by the agent over HTTP
    [session] = customer.ids["chatSessions"]
    png = b"\x89PNG\r\n\x1a\n" + tag.encode() * 50
    png_id = upload(apis["attachments"], png, sessionId=session, fileName="label.png", contentType="image/png")
    sent = apis["chat"].post(
        f"{CHATS}/{session}/messages", {"senderType": "agent", "message": "Your label", "attachmentIds": [png_id]}
    )
    assert sent.status == 201, sent.body
    made.uploads[png_id] = png
    return made


def export_of(privacy_api: HandlerClient, email: str) -> dict[str, Any]:
    asked = privacy_api.post(f"{BASE}/exports", {"customerEmail": email})
    assert asked.status == 202, asked.body
    answer = privacy_api.get(f"{BASE}/exports/{asked.data['id']}")
    assert answer.status == 200 and answer.data["state"] == "done", answer.body
    return dict(answer.data)


def download(url: str) -> requests.Response:
    got = requests.get(url, timeout=10)
    assert got.status_code == 200, got.text
    return got


def export_keys(s3: Any, tenant: UUID, export_id: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=f"exports/{tenant}/{export_id}")
    return {item["Key"] for item in listed.get("Contents", [])}


def test_an_export_carries_each_file_of_the_customer_with_its_bytes_and_none_of_anothers(
    db: DatabaseUrls,
    storage: Any,
    tenant: UUID,
    other_tenant: UUID,
    apis: dict[str, HandlerClient],
    privacy_api: HandlerClient,
) -> None:
    # Given a customer with files in a ticket's thread, in a chat and in their mail, and another customer with the same
    jane = customer_with_files(db, storage, tenant, apis, "Jane Filer", tag="jane")
    otto = customer_with_files(db, storage, tenant, apis, "Otto Filer", tag="otto")
    # and, at another tenant, a ticket of the same email with a file in its thread
    elsewhere = {name: api.as_tenant(other_tenant) for name, api in apis.items()}
    their_ticket = elsewhere["tickets"].post(
        "/api/support/tickets",
        {"customerName": "Jane Filer", "customerEmail": jane.customer.email, "subject": "Hi", "description": "Hi"},
    )
    assert their_ticket.status == 201, their_ticket.body
    their_bytes = b"%PDF-1.7\nanother desk's file\n%%EOF\n"
    their_file = upload(elsewhere["attachments"], their_bytes, ticketId=their_ticket.data["id"])
    assert conversation(elsewhere["tickets"], their_ticket.data["id"], their_file).status == 201

    # When the admin exports the customer
    export = export_of(privacy_api, jane.customer.email)

    # Then the document lists each of their files with its path in the export
    document = json.loads(download(export["downloadUrl"]).text)
    entries = {entry["path"]: entry for entry in document["files"]}
    assert None not in entries
    uploads = {entry["id"]: entry for entry in document["files"] if entry["source"] == "upload"}
    assert set(uploads) == set(jane.uploads)
    assert {entry["fileName"] for entry in uploads.values()} == {"Invoice for Jane Filer.pdf", "label.png"}
    assert all(entry.get("conversationId") or entry.get("messageId") for entry in uploads.values())
    assert len(document["files"]) == len(jane.uploads) + len(jane.mail)
    assert export["progress"]["files"] == len(document["files"])
    # and the answer holds each of them, with a link that serves exactly the file's bytes under its own name
    assert export["moreFilesAfter"] is None
    assert {item["path"] for item in export["files"]} == set(entries)
    expected = {
        **{uploads[attachment_id]["path"]: content for attachment_id, content in jane.uploads.items()},
        **{
            entry["path"]: jane.mail[_mail_key(entry, document)]
            for entry in document["files"]
            if entry["source"] != "upload"
        },
    }
    assert set(expected) == set(entries)
    for item in export["files"]:
        served = download(item["downloadUrl"])
        assert served.content == expected[item["path"]], item["path"]
        assert item["sizeBytes"] == len(served.content)
        assert served.headers["Content-Type"] == entries[item["path"]]["contentType"]
    invoice = next(item for item in export["files"] if item["path"] == uploads[_id_of(jane, b"%PDF")]["path"])
    assert "Invoice%20for%20Jane%20Filer.pdf" in download(invoice["downloadUrl"]).headers["Content-Disposition"]
    # and nothing of the other customer: no file of theirs in the export's keys, no bytes of theirs served
    # nor of the other tenant's
    keys = export_keys(storage, tenant, export["id"])
    assert not [key for key in keys if any(attachment_id in key for attachment_id in [*otto.uploads, their_file])]
    served_bytes = {download(item["downloadUrl"]).content for item in export["files"]}
    assert not served_bytes & {*otto.uploads.values(), *otto.mail.values(), their_bytes}
    assert "Otto" not in json.dumps(document["files"]) and their_file not in json.dumps(document)


# --- the copies' sources are the tenant's own objects, whatever the rows name (review finding 5) ---------------------
# The export job may read every tenant's files; the runtime role (support_app) may set an attachment's object_key and
# insert mail records and thread entries. A row pointed at another desk's object must not copy it into the export.


def _as_runtime(db: DatabaseUrls, tenant: UUID, query: str, params: tuple[Any, ...]) -> None:
    """A write as the handlers' role (support_app, under row-level security), as a compromised one could make it."""
    with psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute(query.encode(), params)


def _two_desks(
    db: DatabaseUrls, s3: Any, tenant: UUID, other_tenant: UUID, apis: dict[str, HandlerClient], tag: str
) -> tuple[Files, Files]:
    """A customer with files here, and one with files at another desk: their bytes are what must not leak."""
    jane = customer_with_files(db, s3, tenant, apis, "Jane Source", tag=f"{tag}-jane")
    elsewhere = {name: api.as_tenant(other_tenant) for name, api in apis.items()}
    otto = customer_with_files(db, s3, other_tenant, elsewhere, "Otto Elsewhere", tag=f"{tag}-otto")
    return jane, otto


def _served(export: dict[str, Any]) -> dict[str, bytes]:
    """The bytes each file link of the export serves, by path."""
    return {item["path"]: download(item["downloadUrl"]).content for item in export["files"]}


def test_an_upload_pointed_at_another_desks_file_exports_its_own_file(
    db: DatabaseUrls,
    storage: Any,
    tenant: UUID,
    other_tenant: UUID,
    apis: dict[str, HandlerClient],
    privacy_api: HandlerClient,
) -> None:
    # Given the customer's sent PDF whose row the runtime role pointed at the other desk's sent PDF
    jane, otto = _two_desks(db, storage, tenant, other_tenant, apis, "upload")
    pdf, their_pdf = _id_of(jane, b"%PDF"), _id_of(otto, b"%PDF")
    _as_runtime(
        db,
        tenant,
        "UPDATE attachments SET object_key = %s WHERE user_id = %s AND id = %s",
        (f"files/{other_tenant}/{their_pdf}", tenant, pdf),
    )
    # When the admin exports the customer
    export = export_of(privacy_api, jane.customer.email)
    # Then the export carries the customer's own PDF, and nothing of the other desk's
    document = json.loads(download(export["downloadUrl"]).text)
    [entry] = [entry for entry in document["files"] if entry["id"] == pdf]
    served = _served(export)
    assert served[entry["path"]] == jane.uploads[pdf]
    assert not set(served.values()) & {*otto.uploads.values(), *otto.mail.values()}


def test_a_mail_record_naming_a_key_other_than_its_message_is_not_copied(
    db: DatabaseUrls,
    storage: Any,
    tenant: UUID,
    other_tenant: UUID,
    apis: dict[str, HandlerClient],
    privacy_api: HandlerClient,
) -> None:
    # Given mail records of the customer's ticket, inserted by the runtime role, whose raw message is the other
    # desk's mail file, or the other desk's raw mail under another SES id than the record's
    jane, otto = _two_desks(db, storage, tenant, other_tenant, apis, "rawmail")
    their_file = next(key for key in otto.mail if key.startswith(f"attachments/{other_tenant}/"))
    their_raw = next(key for key in otto.mail if key.startswith("inbound/"))
    ticket = sorted(jane.customer.ids["tickets"])[1]
    planted = []
    for number, key in enumerate([their_file, their_raw]):
        ses_id = f"planted-{number}-{uuid4().hex}"
        _as_runtime(
            db,
            tenant,
            """INSERT INTO inbound_emails (user_id, message_id, ses_message_id, s3_key, recipient, size_bytes, outcome,
                ticket_id) VALUES (%s, %s, %s, %s, 'desk@inbound.example', 42, 'threaded', %s)""",
            (tenant, f"<{ses_id}@mail.example>", ses_id, key, ticket),
        )
        planted.append(ses_id)
    # When the admin exports the customer
    export = export_of(privacy_api, jane.customer.email)
    # Then those records are in the document, but no file is copied from them: nothing of the other desk is served
    document = json.loads(download(export["downloadUrl"]).text)
    records = {row["sesMessageId"]: row["id"] for row in document["inboundEmails"]}
    assert set(planted) <= set(records)
    copied_from = {entry.get("inboundEmailId") for entry in document["files"]}
    assert not copied_from & {records[ses_id] for ses_id in planted}
    served = _served(export)
    assert not set(served.values()) & {*otto.uploads.values(), *otto.mail.values()}
    # and the customer's own mail is still there, with its bytes
    assert sorted(served.values()) == sorted([*jane.uploads.values(), *jane.mail.values()])


def test_a_thread_entry_naming_a_file_outside_the_desks_mail_files_is_not_copied(
    db: DatabaseUrls,
    storage: Any,
    tenant: UUID,
    other_tenant: UUID,
    apis: dict[str, HandlerClient],
    privacy_api: HandlerClient,
) -> None:
    # Given a thread entry of the customer's ticket, inserted by the runtime role, naming a key of the mail bucket
    # whose second segment is this desk but that is not under attachments/<this desk>/, holding another's bytes
    jane, otto = _two_desks(db, storage, tenant, other_tenant, apis, "mailfile")
    their_bytes = next(content for key, content in otto.mail.items() if key.startswith("attachments/"))
    key = f"inbound/{tenant}/planted.pdf"
    storage.put_object(Bucket=INBOUND_BUCKET, Key=key, Body=their_bytes)
    ticket = sorted(jane.customer.ids["tickets"])[1]
    attachment = {"fileName": "planted.pdf", "s3Bucket": INBOUND_BUCKET, "s3Key": key, "sizeBytes": len(their_bytes)}
    _as_runtime(
        db,
        tenant,
        """INSERT INTO ticket_conversations (user_id, ticket_id, sender_type, sender_name, message, attachments)
        VALUES (%s, %s, 'customer', 'Jane Source', 'see attached', %s)""",
        (tenant, ticket, json.dumps([attachment])),
    )
    # When the admin exports the customer
    export = export_of(privacy_api, jane.customer.email)
    # Then the entry's file is not copied; the customer's own files are
    document = json.loads(download(export["downloadUrl"]).text)
    assert "planted.pdf" not in json.dumps(document["files"])
    served = _served(export)
    assert their_bytes not in served.values()
    assert sorted(served.values()) == sorted([*jane.uploads.values(), *jane.mail.values()])


def _mail_key(entry: dict[str, Any], document: dict[str, Any]) -> str:
    """The mail bucket's key a `files` entry of the mail was copied from, by what the document says of it."""
    if entry["source"] == "email":
        [mail] = [row for row in document["inboundEmails"] if row["id"] == entry["inboundEmailId"]]
        return str(mail["s3Key"])
    [thread_entry] = [row for row in document["conversations"] if row["id"] == entry["conversationId"]]
    position = int(entry["id"].rsplit("-", 1)[1])
    return str(thread_entry["attachments"][position - 1]["s3Key"])


def _id_of(files: Files, start: bytes) -> str:
    return next(attachment_id for attachment_id, content in files.uploads.items() if content.startswith(start))


def test_the_files_are_answered_a_page_at_a_time(
    db: DatabaseUrls,
    storage: Any,
    tenant: UUID,
    apis: dict[str, HandlerClient],
    privacy_api: HandlerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from support.services import privacy

    # Given an export of a customer with six files, and pages of two
    jane = customer_with_files(db, storage, tenant, apis, "Jane Pager", tag="pager")
    monkeypatch.setattr(privacy, "EXPORT_FILES_PER_ANSWER", 2)
    export = export_of(privacy_api, jane.customer.email)
    # When the admin follows moreFilesAfter; Then every file comes once, in path order, and the last page says no more
    paths: list[str] = []
    answer = export
    while True:
        assert len(answer["files"]) <= 2
        paths += [item["path"] for item in answer["files"]]
        if answer["moreFilesAfter"] is None:
            break
        answer = privacy_api.get(f"{BASE}/exports/{export['id']}", query={"filesAfter": answer["moreFilesAfter"]}).data
    assert paths == sorted(paths) and len(paths) == len(set(paths)) == len(jane.uploads) + len(jane.mail)


def test_a_files_after_of_another_shape_than_a_files_path_is_a_422_not_a_storage_error(
    db: DatabaseUrls, storage: Any, tenant: UUID, apis: dict[str, HandlerClient], privacy_api: HandlerClient
) -> None:
    # Given a done export of a customer with files
    jane = customer_with_files(db, storage, tenant, apis, "Jane Shape", tag="shape")
    export = export_of(privacy_api, jane.customer.email)
    path = f"{BASE}/exports/{export['id']}"
    # When the admin asks for the files after something no export path looks like (too long for S3, outside the
    # export's files, a name no export gives): Then each is a 422 naming filesAfter, not a 502 or a 5xx
    for after in ["a" * 1024, "../" * 40, "files/x/y", f"files/{export['id']}/{'n' * 101}", "files/../../other.json"]:
        refused = privacy_api.get(path, query={"filesAfter": after})
        assert refused.status == 422 and refused.error["code"] == "validation_error", (after[:20], refused.body)
        assert refused.error["details"][0]["field"] == "query.filesAfter"
    # and a path the export gave is taken: the files after it
    first = export["files"][0]["path"]
    after_first = privacy_api.get(path, query={"filesAfter": first})
    assert after_first.status == 200, after_first.body
    assert [item["path"] for item in after_first.data["files"]] == [item["path"] for item in export["files"][1:]]


def test_an_export_out_of_time_goes_on_later_and_a_rerun_copies_again_harmlessly(
    db: DatabaseUrls,
    storage: Any,
    tenant: UUID,
    apis: dict[str, HandlerClient],
    privacy_api: HandlerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from support.services import privacy

    # Given a customer with files and an export of them whose start was lost
    jane = customer_with_files(db, storage, tenant, apis, "Jane Rerun", tag="rerun")
    monkeypatch.setattr(privacy, "start", lambda tenant_id, request_id: None)
    export_id = UUID(privacy_api.post(f"{BASE}/exports", {"customerEmail": jane.customer.email}).data["id"])

    # When its run is out of time before its first copy: it gives its lease up, nothing written, no attempt spent
    assert privacy.run_request(tenant, export_id, budget_seconds=0) == "running"
    paused = privacy_api.get(f"{BASE}/exports/{export_id}").data
    assert paused["state"] == "running" and paused["attempts"] == 0 and paused["downloadUrl"] is None
    assert export_keys(storage, tenant, str(export_id)) == set()
    # and the next run goes on to the end
    assert privacy.run_request(tenant, export_id) == "done"
    keys = export_keys(storage, tenant, str(export_id))
    assert len(keys) == 1 + len(jane.uploads) + len(jane.mail)

    # When it runs again with one copy lost and a stray object under its prefix (as a crash and a retry could leave)
    prefix = f"exports/{tenant}/{export_id}"
    storage.delete_object(Bucket=EXPORT_BUCKET, Key=sorted(key for key in keys if "/files/" in key)[0])
    storage.put_object(Bucket=EXPORT_BUCKET, Key=f"{prefix}/files/gone/old.pdf", Body=b"old")
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute("UPDATE privacy_requests SET state = 'pending' WHERE id = %s", (export_id,))
    assert privacy.run_request(tenant, export_id) == "done"

    # Then the export holds the same files, once each, with their bytes, and the stray object is gone
    assert export_keys(storage, tenant, str(export_id)) == keys
    again = privacy_api.get(f"{BASE}/exports/{export_id}").data
    assert again["state"] == "done"
    served = sorted(download(item["downloadUrl"]).content for item in again["files"])
    assert served == sorted([*jane.uploads.values(), *jane.mail.values()])


def test_an_erasure_deletes_the_customers_earlier_exports_with_their_files_and_leaves_anothers(
    db: DatabaseUrls, storage: Any, tenant: UUID, apis: dict[str, HandlerClient], privacy_api: HandlerClient
) -> None:
    # Given two exports of a customer (one failed midway with some files copied) and one of another customer
    jane = customer_with_files(db, storage, tenant, apis, "Jane Erased", tag="erased")
    otto = customer_with_files(db, storage, tenant, apis, "Otto Kept", tag="kept")
    done = export_of(privacy_api, jane.customer.email)
    failed = export_of(privacy_api, jane.customer.email)
    with psycopg.connect(db.owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute("UPDATE privacy_requests SET state = 'failed', s3_key = NULL WHERE id = %s", (failed["id"],))
    storage.delete_object(Bucket=EXPORT_BUCKET, Key=f"exports/{tenant}/{failed['id']}.json")
    kept = export_of(privacy_api, otto.customer.email)
    assert len(export_keys(storage, tenant, done["id"])) == 1 + len(jane.uploads) + len(jane.mail)
    assert len(export_keys(storage, tenant, failed["id"])) == len(jane.uploads) + len(jane.mail)

    # When the admin erases the customer
    asked = privacy_api.post(f"{BASE}/erasures", {"customerEmail": jane.customer.email})
    erasure = privacy_api.get(f"{BASE}/erasures/{asked.data['id']}").data
    assert erasure["state"] == "done" and erasure["progress"]["earlier_requests"] == 2

    # Then nothing of either export is left in S3, and the earlier export answers no file
    assert export_keys(storage, tenant, done["id"]) == set()
    assert export_keys(storage, tenant, failed["id"]) == set()
    assert privacy_api.get(f"{BASE}/exports/{done['id']}").data["files"] == []
    # and the other customer's export is whole
    assert len(export_keys(storage, tenant, kept["id"])) == 1 + len(otto.uploads) + len(otto.mail)


class Crash(RuntimeError):
    pass


def test_an_erasure_that_starts_stops_an_export_of_the_customer_before_its_next_copy(
    db: DatabaseUrls,
    storage: Any,
    tenant: UUID,
    apis: dict[str, HandlerClient],
    privacy_api: HandlerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import UTC, datetime

    from support.auth import Principal, Role
    from support.models.privacy import PrivacyRequestCreate
    from support.services import privacy

    # Given an export of a customer with files, claimed by its run, and an erasure of them that has started (its
    # first transaction committed, then its first batch crashed)
    jane = customer_with_files(db, storage, tenant, apis, "Jane Racing", tag="racing")
    monkeypatch.setattr(privacy, "start", lambda tenant_id, request_id: None)
    export_id = UUID(privacy_api.post(f"{BASE}/exports", {"customerEmail": jane.customer.email}).data["id"])
    claim = privacy._claim(tenant, export_id, datetime.now(UTC))
    assert claim is not None
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="dpo")
    erasure_id = privacy.request_erasure(admin, PrivacyRequestCreate(customer_email=jane.customer.email)).id

    def crash(step: str, rows: int) -> None:
        raise Crash("stopped after its start")

    with pytest.raises(Crash):
        privacy.run_request(tenant, erasure_id, after_batch=crash)

    # When the export's run goes on: Then it stops at its first copy, and nothing of it is left in S3
    with pytest.raises(privacy.LeaseLost):
        privacy._run_export(claim, lambda: datetime.now(UTC))
    assert export_keys(storage, tenant, str(export_id)) == set()
    export = privacy_api.get(f"{BASE}/exports/{export_id}").data
    assert export["state"] == "failed" and "erased" in export["error"]
    # and the erasure, resumed, ends (no request is left for the next test's sweep)
    assert privacy.run_request(tenant, erasure_id) == "done"


def test_s3_failing_to_list_the_files_is_a_502_and_the_next_get_answers(
    db: DatabaseUrls,
    storage: Any,
    moto: Any,
    tenant: UUID,
    apis: dict[str, HandlerClient],
    privacy_api: HandlerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from local import ses as local_ses

    jane = customer_with_files(db, storage, tenant, apis, "Jane Outage", tag="outage")
    export = export_of(privacy_api, jane.customer.email)
    # When S3 is unreachable as the admin reads the export: a clear 502, nothing changed
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{local_ses._free_port()}")
    failed = privacy_api.get(f"{BASE}/exports/{export['id']}")
    assert failed.status == 502 and failed.error["code"] == "storage_error", failed.body
    # and once S3 is back, the same read answers every file
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)
    again = privacy_api.get(f"{BASE}/exports/{export['id']}")
    assert again.status == 200 and len(again.data["files"]) == len(jane.uploads) + len(jane.mail)
