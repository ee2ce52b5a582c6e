"""Privacy requests (issue 19): a customer's export holds every record made for them and nothing of anyone else; an
erasure leaves no trace of their email or name in any text or JSON column of the schema, nor in S3, keeps every
figure exactly as it was, is idempotent, and resumes after a crash midway from its last committed batch.

Real PostgreSQL, the real handlers and services; moto in server mode (local.ses, as `make run` runs it) for S3.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from local import ses as local_ses
from local.database import DatabaseUrls
from local.verify_totals import recount
from tests import recount as figures
from tests.http_events import HandlerClient

EXPORT_BUCKET = "desk-privacy-exports-test"
INBOUND_BUCKET = "desk-inbound-privacy-test"
BASE = "/api/support/privacy"


@pytest.fixture
def s3(moto: local_ses.LocalSes, moto_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3

    from support.config import get_settings

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)
    monkeypatch.setenv("PRIVACY_EXPORT_BUCKET", EXPORT_BUCKET)
    monkeypatch.setenv("INBOUND_EMAIL_BUCKET", INBOUND_BUCKET)
    monkeypatch.delenv("PRIVACY_FUNCTION_NAME", raising=False)
    get_settings.cache_clear()
    client = boto3.client("s3", endpoint_url=moto.endpoint, region_name=local_ses.REGION)
    client.create_bucket(Bucket=EXPORT_BUCKET)
    client.create_bucket(Bucket=INBOUND_BUCKET)
    client.put_bucket_versioning(Bucket=INBOUND_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield client
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def privacy_api(db: DatabaseUrls, tenant: UUID, s3: Any) -> HandlerClient:
    from functions.privacy import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@dataclass
class Customer:
    """Everything a test made for one customer of one tenant: ids per kind, and the S3 keys of their mail and files."""

    tenant: UUID
    name: str
    email: str
    ids: dict[str, set[str]] = field(default_factory=dict)
    s3_keys: list[str] = field(default_factory=list)

    def add(self, kind: str, value: Any) -> None:
        self.ids.setdefault(kind, set()).add(str(value))


def _owner(db: DatabaseUrls, tenant: UUID, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """A write by hand, as the owner, naming the tenant first (the triggers run under row-level security)."""
    with psycopg.connect(db.owner, row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


def make_customer(db: DatabaseUrls, s3: Any, tenant: UUID, name: str, *, tag: str) -> Customer:
    """A customer with two tickets (one resolved, rated, with feedback), thread entries both ways (one with a file in
    S3, one from an inbound mail kept in S3), a chat with messages both ways, their contact, and a create retried
    with an Idempotency-Key (whose stored answer names them)."""
    from functions.chat import app as chat_app
    from functions.tickets import app as tickets_app

    email = f"{tag}.{uuid4().hex[:8]}@Example.com"  # any case: found lower-cased
    customer = Customer(tenant=tenant, name=name, email=email.lower())
    tickets = HandlerClient(tickets_app.lambda_handler, tenant=tenant)
    chats = HandlerClient(chat_app.lambda_handler, tenant=tenant)
    for number in range(2):
        created = tickets.post(
            "/api/support/tickets",
            {
                "customerName": name,
                "customerEmail": email,
                "customerPhone": "+44 20 7946 0958",
                "subject": f"{name}'s order {number}",
                "description": f"Hello, this is {name} ({email}), my parcel never came.",
                "priority": "high",
            },
            headers={"Idempotency-Key": f"create-{tag}-{number}-{uuid4().hex[:6]}"},
        )
        assert created.status == 201, created.body
        ticket_id = created.data["id"]
        customer.add("tickets", ticket_id)
        customer.add("contacts", created.data["contactId"])
        reply = tickets.post(
            f"/api/support/tickets/{ticket_id}/conversations",
            {"senderType": "agent", "senderName": "Grace Hopper", "message": f"Dear {name}, we are on it."},
        )
        assert reply.status == 201, reply.body
        customer.add("conversations", reply.data["id"])
        key = f"attachments/{tenant}/{uuid4().hex}/1-{name.replace(' ', '_')}.pdf"
        s3.put_object(Bucket=INBOUND_BUCKET, Key=key, Body=b"%PDF the invoice")
        ses_id = uuid4().hex
        raw = f"inbound/{ses_id}"  # where SES stores it: the prefix and its SES message id (email_in.receive)
        s3.put_object(Bucket=INBOUND_BUCKET, Key=raw, Body=f"From: {name} <{email}>\r\n\r\nWhere is it?".encode())
        customer.s3_keys += [key, raw]
        [entry] = _owner(
            db,
            tenant,
            """INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, sender_email, message,
                attachments) VALUES (%s, %s, 'customer', %s, %s, %s, %s) RETURNING id""",
            (
                ticket_id,
                tenant,
                name,
                email,
                f"It is {name} again, see the invoice.",
                json.dumps([{"fileName": "invoice.pdf", "s3Bucket": INBOUND_BUCKET, "s3Key": key, "sizeBytes": 16}]),
            ),
        )
        customer.add("conversations", entry["id"])
        [mail] = _owner(
            db,
            tenant,
            """INSERT INTO inbound_emails (user_id, message_id, ses_message_id, s3_key, recipient, sender, subject,
                size_bytes, outcome, ticket_id, conversation_id)
            VALUES (%s, %s, %s, %s, 'desk@inbound.example', %s, %s, 42, 'threaded', %s, %s) RETURNING id""",
            (tenant, f"<{uuid4()}@mail.example>", ses_id, raw, email, f"Re: {name}", ticket_id, entry["id"]),
        )
        customer.add("inboundEmails", mail["id"])
    first = sorted(customer.ids["tickets"])[0]
    resolved = tickets.patch(f"/api/support/tickets/{first}", {"status": "resolved"})
    assert resolved.status == 200, resolved.body
    rated = tickets.post(
        f"/api/support/tickets/{first}/feedback",
        {"rating": 4, "feedback": f"{name} says thanks", "agentRating": 5},
    )
    assert rated.status == 201, rated.body
    customer.add("feedback", rated.data["id"])
    started = chats.post(
        "/api/support/chat/sessions",
        {"visitorId": f"visitor-{uuid4().hex[:10]}", "visitorName": name, "visitorEmail": email},
        headers={"User-Agent": f"Mozilla/5.0 ({tag} browser)"},
    )
    assert started.status == 201, started.body
    session_id = started.data["id"]
    customer.add("chatSessions", session_id)
    [message] = _owner(
        db,
        tenant,
        """INSERT INTO chat_messages (session_id, user_id, sender_type, sender_name, message, attachment_url,
            attachment_type) VALUES (%s, %s, 'customer', %s, %s, 'https://files.example/photo.jpg', 'image/jpeg')
        RETURNING id""",
        (session_id, tenant, name, f"hi, {name} here, {email}"),
    )
    customer.add("chatMessages", message["id"])
    return customer


def _document(privacy_api: HandlerClient, customer: Customer) -> tuple[dict[str, Any], str]:
    asked = privacy_api.post(f"{BASE}/exports", {"customerEmail": customer.email.upper()})
    assert asked.status == 202, asked.body
    assert set(asked.data) >= {"id", "state"}
    export = privacy_api.get(f"{BASE}/exports/{asked.data['id']}")
    assert export.status == 200, export.body
    assert export.data["state"] == "done", export.data
    with urllib.request.urlopen(export.data["downloadUrl"], timeout=10) as answer:  # noqa: S310 - moto on 127.0.0.1
        text = answer.read().decode()
    return json.loads(text), text


def test_an_export_holds_every_record_of_the_customer_and_nothing_of_anyone_else(
    db: DatabaseUrls, s3: Any, tenant: UUID, other_tenant: UUID, privacy_api: HandlerClient
) -> None:
    # Given a customer, another customer of the same desk, and the same email at another tenant
    jane = make_customer(db, s3, tenant, "Jane Privacy", tag="jane")
    other = make_customer(db, s3, tenant, "Otto Neighbour", tag="otto")
    elsewhere = make_customer(db, s3, other_tenant, "Jane Privacy", tag="jane")
    _owner(
        db,
        other_tenant,
        "UPDATE support_tickets SET customer_email = %s WHERE user_id = %s",
        (jane.email, other_tenant),
    )

    # When the admin exports the customer and downloads the document
    document, text = _document(privacy_api, jane)

    # Then it holds every record made for them
    for kind, expected in jane.ids.items():
        assert {str(row["id"]) for row in document[kind]} == expected, kind
    assert document["customerEmail"] == jane.email
    assert {row["contactId"] for row in document["contactIdentities"]} == jane.ids["contacts"]
    assert {a["s3Key"] for a in document["attachments"] if "s3Key" in a} == {
        k for k in jane.s3_keys if k.startswith("attachments/")
    }
    assert any(a.get("url") == "https://files.example/photo.jpg" for a in document["attachments"])
    # and nothing of the other customer, nor of the other tenant
    everyone_else = set().union(*other.ids.values(), *elsewhere.ids.values())
    assert not [i for i in everyone_else if i in text]
    assert "Otto" not in text and other.email not in text
    assert str(other_tenant) not in text


def test_an_export_is_an_admins_and_another_tenants_is_unknown(
    db: DatabaseUrls, s3: Any, tenant: UUID, other_tenant: UUID, privacy_api: HandlerClient
) -> None:
    asked = privacy_api.post(f"{BASE}/exports", {"customerEmail": "nobody@example.com"})
    assert asked.status == 202, asked.body
    assert (
        privacy_api.as_tenant(tenant, role="agent")
        .post(f"{BASE}/exports", {"customerEmail": "nobody@example.com"})
        .status
        == 403
    )
    assert privacy_api.as_tenant(other_tenant).get(f"{BASE}/exports/{asked.data['id']}").status == 404
    assert privacy_api.get(f"{BASE}/erasures/{asked.data['id']}").status == 404  # an export is no erasure
    assert privacy_api.post(f"{BASE}/erasures", {"customerEmail": "not an email"}).status == 422


# --- the erasure ------------------------------------------------------------------------------------------------------

SEARCHED_TYPES = ("text", "character varying", "character", "json", "jsonb", "tsvector", "inet", "text[]")


def traces(db: DatabaseUrls, needles: list[str], tenant: UUID) -> list[str]:
    """Every column of every table of the schema (the catalog: text, varchar, json, jsonb, and the search side
    tables' tsvectors) whose value holds one of `needles`, case-insensitively, in a row of `tenant` (a table without a
    tenant column: in any row): "table.column: needle"."""
    found: list[str] = []
    with psycopg.connect(db.admin) as conn:  # superuser: every tenant's rows, no row-level security
        columns = conn.execute(
            """SELECT c.relname, a.attname,
                EXISTS (SELECT FROM pg_attribute u WHERE u.attrelid = c.oid AND u.attname = 'user_id') AS per_tenant
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
              AND format_type(a.atttypid, NULL) = ANY(%s)""",
            (list(SEARCHED_TYPES),),
        ).fetchall()
        assert len(columns) > 100  # the catalog query does find the schema's columns
        for table, column, per_tenant in columns:
            for needle in needles:
                probe = needle.lower()
                where = "user_id = %s AND " if per_tenant else ""
                params: tuple[Any, ...] = (tenant, probe) if per_tenant else (probe,)
                probe_sql = f'SELECT 1 FROM public."{table}" WHERE {where}strpos(lower("{column}"::text), %s) > 0'
                hit = conn.execute(probe_sql.encode(), params).fetchone()
                if hit:
                    found.append(f"{table}.{column}: {needle}")
    return found


def _needles(customer: Customer) -> list[str]:
    # The name as written, its words as the search index keeps them (lower-cased lexemes), the email, its local part
    first, last = customer.name.lower().split()
    return [customer.name, customer.email, customer.email.split("@")[0], f"'{first}'", f"'{last}'"]


def stored_figures(db: DatabaseUrls, tenant: UUID) -> dict[str, Any]:
    """What the desk's figures read: running totals, day totals, agents' figures, SLA totals and due times, the
    tickets' and chats' statuses and times."""
    with psycopg.connect(db.admin, row_factory=dict_row) as conn:
        sla = conn.execute("SELECT * FROM ticket_sla_totals WHERE user_id = %s ORDER BY 1, 2", (tenant,)).fetchall()
        shapes = conn.execute(
            """SELECT id, status, priority, category, channel, assigned_agent_id, created_at, updated_at, resolved_at,
                first_response_time, resolution_time, first_response_due_at, resolution_due_at, reference, contact_id
            FROM support_tickets WHERE user_id = %s ORDER BY id""",
            (tenant,),
        ).fetchall()
        chats = conn.execute(
            """SELECT id, status, assigned_agent_id, created_at, updated_at, session_start_time, session_end_time,
                total_messages, message_count, duration, rating, contact_id
            FROM live_chat_sessions WHERE user_id = %s ORDER BY id""",
            (tenant,),
        ).fetchall()
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM ticket_conversations WHERE user_id = %(t)s) AS entries,
                      (SELECT count(*) FROM chat_messages WHERE user_id = %(t)s) AS messages,
                      (SELECT count(*) FROM ticket_feedback WHERE user_id = %(t)s) AS feedback,
                      (SELECT count(*) FROM automation_events WHERE user_id = %(t)s) AS automation_events,
                      (SELECT count(*) FROM support_contacts WHERE user_id = %(t)s) AS contacts""",
            {"t": tenant},
        ).fetchone()
    return {
        "tickets": figures.stored_ticket_totals(db, tenant),
        "chats": figures.stored_chat_totals(db, tenant),
        "feedback": figures.stored_feedback_totals(db, tenant),
        "days": figures.stored_day_totals(db, tenant),
        "agents": figures.stored_agent_figures(db, tenant),
        "sla": sla,
        "ticket_rows": shapes,
        "chat_rows": chats,
        "counts": counts,
    }


def s3_keys(s3: Any) -> set[str]:
    keys: set[str] = set()
    for bucket in (INBOUND_BUCKET, EXPORT_BUCKET):
        listed = s3.list_object_versions(Bucket=bucket)
        keys |= {v["Key"] for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]}
    return keys


def test_an_erasure_leaves_no_trace_and_every_figure_as_it_was(
    db: DatabaseUrls, s3: Any, tenant: UUID, other_tenant: UUID, privacy_api: HandlerClient
) -> None:
    # Given a customer with everything, an export made of them, another customer, and their name and email at another
    # tenant
    jane = make_customer(db, s3, tenant, "Jane Erasable", tag="erasable")
    otto = make_customer(db, s3, tenant, "Otto Keepme", tag="keepme")
    elsewhere = make_customer(db, s3, other_tenant, "Jane Erasable", tag="erasable")
    _owner(db, other_tenant, "UPDATE support_tickets SET customer_email = %s", (jane.email,))
    assert traces(db, _needles(jane), tenant) and traces(db, [jane.email], other_tenant)
    export, _ = _document(privacy_api, jane)
    export_key = f"exports/{tenant}/{export['exportId']}.json"
    assert export_key in s3_keys(s3)
    # and a rule that would act on any edit of a ticket (an erasure is none: it must not fire)
    from functions.automations import app as automations_app

    rule = HandlerClient(automations_app.lambda_handler, tenant=tenant).post(
        "/api/support/automations",
        {
            "name": "Any edit lowers the priority",
            "event": "ticket_updated",
            "conditions": {"all": []},
            "actions": [{"type": "set_priority", "value": "low"}],
        },
    )
    assert rule.status == 201, rule.body
    before = stored_figures(db, tenant)
    assert recount(db.owner, tenant, repair=False) == []

    # When the admin erases the customer
    asked = privacy_api.post(f"{BASE}/erasures", {"customerEmail": jane.email})

    # Then it is done, with its progress per step
    assert asked.status == 202, asked.body
    erasure = privacy_api.get(f"{BASE}/erasures/{asked.data['id']}").data
    assert erasure["state"] == "done", erasure
    assert erasure["customerEmail"] is None
    assert erasure["progress"]["tickets"] == 2 and erasure["progress"]["chat_messages"] == 1
    assert erasure["progress"]["conversations"] == 4 and erasure["progress"]["earlier_requests"] == 1
    # and no text or JSON column anywhere holds their email or name
    assert traces(db, _needles(jane), tenant) == []
    # and S3 holds none of their mail, files or exports, while the other customer's stay
    keys = s3_keys(s3)
    assert not set(jane.s3_keys) & keys and export_key not in keys
    assert set(otto.s3_keys) <= keys
    # and every figure, status, time and count is as it was, and the recount agrees
    assert stored_figures(db, tenant) == before
    assert recount(db.owner, tenant, repair=False) == []
    # and the other customer and the other tenant are untouched
    _still_there(db, otto)
    _still_there(db, elsewhere)
    assert traces(db, [jane.email], other_tenant)


def _still_there(db: DatabaseUrls, customer: Customer) -> None:
    with psycopg.connect(db.admin) as conn:
        names = conn.execute(
            "SELECT count(*) FROM support_tickets WHERE user_id = %s AND customer_name = %s",
            (customer.tenant, customer.name),
        ).fetchone()
        assert names == (2,)
        texts = conn.execute(
            "SELECT count(*) FROM chat_messages WHERE user_id = %s AND message LIKE %s",
            (customer.tenant, f"%{customer.name}%"),
        ).fetchone()
        assert texts == (1,)


class Crash(RuntimeError):
    pass


def test_an_erasure_killed_midway_resumes_from_its_last_batch_and_a_second_one_is_a_no_op(
    db: DatabaseUrls, s3: Any, tenant: UUID, privacy_api: HandlerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.auth import Principal, Role
    from support.models.privacy import PrivacyRequestCreate
    from support.services import privacy

    # Given a customer, batches of 1 row, and a run that crashes inside its third batch (before that batch commits)
    jane = make_customer(db, s3, tenant, "Jane Crashing", tag="crashing")
    before = stored_figures(db, tenant)
    monkeypatch.setattr(privacy, "BATCH", 1)
    started_at_once = privacy.start
    monkeypatch.setattr(privacy, "start", lambda tenant_id, request_id: None)  # the job is run by hand below
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="dpo")
    request_id = privacy.request_erasure(admin, PrivacyRequestCreate(customer_email=jane.email)).id
    batches: list[str] = []

    def crash_in_third(step: str, rows: int) -> None:
        batches.append(step)
        if len(batches) == 3:
            raise Crash("killed midway")

    at = datetime.now(UTC)
    with pytest.raises(Crash):
        privacy.run_request(tenant, request_id, now=lambda: at, after_batch=crash_in_third)

    # Then two batches are committed (two thread entries erased), the third rolled back, the error recorded
    stalled = privacy_api.get(f"{BASE}/erasures/{request_id}").data
    assert stalled["state"] == "running" and stalled["attempts"] == 1
    assert stalled["step"] == "conversations" and stalled["progress"] == {"conversations": 2}
    assert "killed midway" in stalled["error"]
    with psycopg.connect(db.admin) as conn:
        erased = conn.execute(
            "SELECT count(*) FROM ticket_conversations WHERE user_id = %s AND message = '[erased]'", (tenant,)
        ).fetchone()
    assert erased == (2,)
    # and the lease is given up, so the sweep resumes it at its next run (the same request, not a new one)
    resumed = privacy.sweep(at + timedelta(seconds=1))
    assert request_id in resumed
    done = privacy_api.get(f"{BASE}/erasures/{request_id}").data
    assert done["state"] == "done" and done["attempts"] == 2 and done["error"] is None
    assert done["progress"]["conversations"] == 4  # each entry once: nothing done twice, nothing skipped
    assert traces(db, _needles(jane), tenant) == []
    assert stored_figures(db, tenant) == before

    # When the customer is erased again: a new request that finds nothing left, done
    monkeypatch.setattr(privacy, "start", started_at_once)
    again = privacy_api.post(f"{BASE}/erasures", {"customerEmail": jane.email})
    assert again.status == 202 and again.data["id"] != str(request_id)
    second = privacy_api.get(f"{BASE}/erasures/{again.data['id']}").data
    assert second["state"] == "done" and not any(second["progress"].values())
    assert stored_figures(db, tenant) == before


def test_an_open_erasure_is_answered_again_and_a_lost_one_is_resumed_then_failed_after_its_attempts(
    db: DatabaseUrls, s3: Any, tenant: UUID, privacy_api: HandlerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.services import privacy

    # Given an erasure whose start was lost (the invocation never ran)
    monkeypatch.setattr(privacy, "start", lambda tenant_id, request_id: None)
    first = privacy_api.post(f"{BASE}/erasures", {"customerEmail": "lost@example.com"})
    assert first.status == 202 and first.data["state"] == "pending"
    # When it is asked for again while open: the same request
    again = privacy_api.post(f"{BASE}/erasures", {"customerEmail": "LOST@example.com"})
    assert again.data["id"] == first.data["id"]
    request_id = UUID(first.data["id"])

    # And when every run of it fails, the sweep resumes it after each lease, at most MAX_ATTEMPTS times
    def broken(cur: Any, claim: Any, cursor: str | None) -> Any:
        raise Crash("S3 is down")

    monkeypatch.setattr(privacy, "ERASERS", [privacy.Eraser("broken", broken)])
    at = datetime.now(UTC)
    assert privacy.sweep(at) == []  # within its grace, a pending request is its own invocation's
    for attempt in range(1, privacy.MAX_ATTEMPTS + 1):
        at += timedelta(minutes=5)
        assert privacy.sweep(at) == [request_id]
        row = privacy_api.get(f"{BASE}/erasures/{request_id}").data
        assert row["attempts"] == attempt and "S3 is down" in row["error"]
    # Then it is failed, and the sweep leaves it be
    assert row["state"] == "failed"
    assert privacy.sweep(at + timedelta(minutes=5)) == []


def test_the_erasure_function_serves_only_a_running_erasure_of_the_callers_own_tenant(
    db: DatabaseUrls, s3: Any, tenant: UUID, other_tenant: UUID, privacy_api: HandlerClient
) -> None:
    from support.db import tenant_transaction

    asked = privacy_api.post(f"{BASE}/erasures", {"customerEmail": "someone@example.com"})
    assert asked.data["state"] == "pending" or privacy_api.get(f"{BASE}/erasures/{asked.data['id']}").status == 200
    for as_tenant in (other_tenant, tenant):  # another tenant's request; and its own, done (not running)
        with pytest.raises(psycopg.errors.NoDataFound), tenant_transaction(as_tenant) as cur:
            cur.execute("SELECT * FROM privacy_erase_batch(%s, 'tickets', NULL, 10)", (asked.data["id"],))


def test_the_job_function_runs_a_request_from_its_invocation_event(
    db: DatabaseUrls, s3: Any, tenant: UUID, privacy_api: HandlerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.privacy_job import app
    from local.gateway import LambdaContext
    from local.sample_events import privacy_job_samples
    from support.services import privacy

    context = LambdaContext(function_name="PrivacyJobFunction", memory_limit_in_mb=1024, timeout_seconds=900)
    # Given the sample event (events/privacy_job/run.json): an unknown request is nothing to run
    [sample] = privacy_job_samples().values()
    assert app.lambda_handler(sample, context)["state"] is None
    # and an export whose start was lost
    monkeypatch.setattr(privacy, "start", lambda tenant_id, request_id: None)
    asked = privacy_api.post(f"{BASE}/exports", {"customerEmail": "job@example.com"})
    assert asked.data["state"] == "pending"
    # When the job is invoked with its event; Then it runs it to done, once
    event = {"tenantId": str(tenant), "privacyRequestId": asked.data["id"]}
    assert app.lambda_handler(event, context) == {"privacyRequestId": asked.data["id"], "state": "done"}
    assert app.lambda_handler(event, context)["state"] is None
    assert privacy_api.get(f"{BASE}/exports/{asked.data['id']}").data["downloadUrl"]


def test_the_sample_events_of_the_privacy_routes(db: DatabaseUrls, s3: Any) -> None:
    from pathlib import Path

    from functions.privacy import app
    from tests.http_events import invoke_sample_event

    events = Path(__file__).resolve().parents[2] / "events" / "privacy"
    answers = {
        path.stem: invoke_sample_event(app.lambda_handler, path, "PrivacyFunction")["statusCode"]
        for path in sorted(events.glob("*.json"))
    }
    # the reads name a request the sample tenant does not have
    assert answers == {"get_erasure": 404, "get_export": 404, "request_erasure": 202, "request_export": 202}


def test_an_export_running_while_the_customer_is_erased_keeps_nothing(
    db: DatabaseUrls, s3: Any, tenant: UUID, privacy_api: HandlerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.services import privacy

    # Given an export of a customer whose run has started (claimed) but not finished
    jane = make_customer(db, s3, tenant, "Jane Racing", tag="racing")
    started_at_once = privacy.start
    monkeypatch.setattr(privacy, "start", lambda tenant_id, request_id: None)
    export_id = UUID(privacy_api.post(f"{BASE}/exports", {"customerEmail": jane.email}).data["id"])
    claim = privacy._claim(tenant, export_id, datetime.now(UTC))
    assert claim is not None
    # When the customer is erased meanwhile, and then the export's run goes on
    monkeypatch.setattr(privacy, "start", started_at_once)
    erasure = privacy_api.post(f"{BASE}/erasures", {"customerEmail": jane.email})
    assert privacy_api.get(f"{BASE}/erasures/{erasure.data['id']}").data["state"] == "done"
    with pytest.raises(privacy.LeaseLost):
        privacy._run_export(claim, lambda: datetime.now(UTC))
    # Then the export is failed, names no one, and its document is not in S3
    export = privacy_api.get(f"{BASE}/exports/{export_id}").data
    assert export["state"] == "failed" and export["customerEmail"] is None and export["downloadUrl"] is None
    assert not [k for k in s3_keys(s3) if k.startswith(f"exports/{tenant}/")]
    assert traces(db, _needles(jane), tenant) == []
