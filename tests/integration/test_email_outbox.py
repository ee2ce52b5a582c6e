"""Email out (issue 17): the email settings, the outbox enqueued with the change, its drain through SES (moto in
server mode on 127.0.0.1), retries, permanent failures, concurrent drains, and suppression after a bounce.

Real PostgreSQL, real handlers and services; moto stands in for SES only (local.ses, as `make run` runs it).
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local import ses as local_ses
from local.database import DatabaseUrls
from local.gateway import LambdaContext
from support.db import tenant_transaction
from support.mail.inbound import reference_in_subject
from support.services import email_outbox
from tests.http_events import HandlerClient
from tests.integration.test_chat_concurrency import connection_per_thread, run_together
from tests.integration.test_tickets_api import BASE, new_ticket, resolve

__all__ = ["connection_per_thread"]  # the fixture, used by name below

SETTINGS = "/api/support/settings/email"


def CONTEXT() -> LambdaContext:
    return LambdaContext(function_name="EmailOutboxFunction", memory_limit_in_mb=512, timeout_seconds=60)


EVENTS = Path(__file__).resolve().parents[2] / "events" / "email_outbox"


@pytest.fixture
def ses(moto: local_ses.LocalSes, moto_credentials: None, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(local_ses.ENDPOINT_VARIABLE, moto.endpoint)
    monkeypatch.delenv("SES_CONFIGURATION_SET", raising=False)
    return moto.endpoint


@pytest.fixture
def settings_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.settings import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@pytest.fixture
def sender(ses: str) -> str:
    """A sender domain of this test's own, verified in moto's SES."""
    domain = f"desk-{uuid4().hex[:10]}.example"
    local_ses.verify_senders(ses, [domain])
    return f"support@{domain}"


def configure(settings_api: HandlerClient, from_address: str | None, **switches: bool) -> dict[str, Any]:
    reply = settings_api.put(SETTINGS, {"fromName": "Shop Support", "fromAddress": from_address, **switches})
    assert reply.status == 200, reply.body
    return dict(reply.data)


def outbox(db: DatabaseUrls, tenant: UUID) -> list[dict[str, Any]]:
    with psycopg.connect(db.admin, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT * FROM email_outbox WHERE user_id = %s ORDER BY created_at, kind", (tenant,)
        ).fetchall()


def make_due(db: DatabaseUrls, tenant: UUID) -> None:
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            "UPDATE email_outbox SET next_attempt_at = now() - interval '1 second' WHERE user_id = %s", (tenant,)
        )


def mails_of(ticket_id: str) -> list[local_ses.SentMail]:
    return [m for m in local_ses.sent_mail() if m.message["X-Support-Ticket"] == ticket_id]


def drain(**kw: Any) -> email_outbox.DrainResult:
    return email_outbox.drain(time_budget_seconds=30, **kw)


def reply_as_agent(api: HandlerClient, ticket_id: str, text: str, *, internal: bool = False) -> dict[str, Any]:
    body = {"senderType": "agent", "senderName": "Grace", "message": text, "isInternal": internal}
    reply = api.post(f"{BASE}/{ticket_id}/conversations", body)
    assert reply.status == 201, reply.body
    return dict(reply.data)


# --- settings -----------------------------------------------------------------------------------------------------


class TestEmailSettings:
    def test_defaults_then_a_put_is_read_back(self, settings_api: HandlerClient) -> None:
        first = settings_api.get(SETTINGS)
        assert first.status == 200
        assert first.data == {
            "inboundAddresses": [],
            "fromName": None,
            "fromAddress": None,
            "notifyReceived": True,
            "notifyReplied": True,
            "notifyResolved": True,
            "notifyClosed": True,
        }
        address = f"Support-{uuid4().hex[:8]}@Shop.example"
        body = {"inboundAddresses": [address], "fromAddress": "desk@shop.example", "notifyClosed": False}
        put = settings_api.put(SETTINGS, body)
        assert put.status == 200, put.body
        assert put.data["inboundAddresses"] == [address.lower()]
        assert settings_api.get(SETTINGS).data == put.data
        # a PUT replaces the set: the address is let go
        assert settings_api.put(SETTINGS, {"inboundAddresses": []}).data["inboundAddresses"] == []

    def test_an_address_belongs_to_one_tenant(self, settings_api: HandlerClient, other_tenant: UUID) -> None:
        address = f"help-{uuid4().hex[:8]}@shop.example"
        assert settings_api.put(SETTINGS, {"inboundAddresses": [address]}).status == 200
        other = settings_api.as_tenant(other_tenant)
        taken = other.put(SETTINGS, {"inboundAddresses": [address.upper()], "fromAddress": "x@other.example"})
        assert taken.status == 409, taken.body
        assert [d["field"] for d in taken.error["details"]] == ["body.inboundAddresses.0"]
        assert other.get(SETTINGS).data["fromAddress"] is None  # nothing of the refused PUT was kept
        # once the first tenant lets it go, the other may take it
        assert settings_api.put(SETTINGS, {"inboundAddresses": []}).status == 200
        assert other.put(SETTINGS, {"inboundAddresses": [address]}).status == 200

    @pytest.mark.parametrize(
        "body",
        [
            {"fromAddress": "not an address"},
            {"inboundAddresses": ["a@shop.example", "A@shop.example"]},
            {"inboundAddresses": [f"a{i}@shop.example" for i in range(21)]},
            {"fromName": "x" * 201},
            {"inboundAddresses": "a@shop.example"},
            {"fromAddress": "jöran@shop.example"},  # SES sends only from an ASCII local part
        ],
    )
    def test_invalid_bodies_are_422(self, settings_api: HandlerClient, body: dict[str, Any]) -> None:
        assert settings_api.put(SETTINGS, body).status == 422

    def test_agents_read_and_only_admins_write(self, settings_api: HandlerClient, tenant: UUID) -> None:
        agent = settings_api.as_tenant(tenant, role="agent")
        assert agent.get(SETTINGS).status == 200
        assert agent.put(SETTINGS, {"fromAddress": "desk@shop.example"}).status == 403


# --- enqueue ------------------------------------------------------------------------------------------------------


class TestEnqueue:
    def test_each_event_enqueues_once_and_internal_notes_never(
        self, db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, settings_api: HandlerClient
    ) -> None:
        configure(settings_api, "support@shop.example")
        ticket = new_ticket(tickets_api, customerEmail="Ana@Example.com")
        reply_as_agent(tickets_api, ticket["id"], "A note for colleagues", internal=True)
        public = reply_as_agent(tickets_api, ticket["id"], "We are sending a new one.")
        customer = {"senderType": "customer", "senderName": "Ana", "message": "thanks"}
        assert tickets_api.as_tenant(tenant).post(f"{BASE}/{ticket['id']}/conversations", customer).status == 403
        resolve(tickets_api, ticket["id"])
        resolve(tickets_api, ticket["id"])  # resolved again without a reopen: told once
        assert tickets_api.post(f"{BASE}/{ticket['id']}/close").status == 200
        rows = outbox(db, tenant)
        assert [(r["kind"], r["conversation_id"]) for r in rows] == [
            ("received", None),
            ("replied", UUID(public["id"])),
            ("resolved", None),
            ("closed", None),
        ]
        assert {r["recipient"] for r in rows} == {ticket["customerEmail"]}
        assert {r["state"] for r in rows} == {"pending"}
        for row in rows:
            assert re.fullmatch(rf"<ticket-{ticket['id']}\.{row['id']}@shop\.example>", row["message_id"])
        # enqueuing the same notification again stores nothing
        with tenant_transaction(tenant) as cur:
            assert not email_outbox.notify(cur, tenant, UUID(ticket["id"]), email_outbox.RECEIVED)
            assert not email_outbox.notify(
                cur, tenant, UUID(ticket["id"]), email_outbox.REPLIED, conversation_id=UUID(public["id"])
            )
        assert len(outbox(db, tenant)) == 4

    def test_a_reopened_ticket_resolved_again_is_told_again(
        self, db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, settings_api: HandlerClient
    ) -> None:
        configure(settings_api, "support@shop.example", notifyReceived=False)
        ticket = new_ticket(tickets_api)
        resolve(tickets_api, ticket["id"])
        assert tickets_api.patch(f"{BASE}/{ticket['id']}", {"status": "open"}).status == 200
        resolve(tickets_api, ticket["id"])
        assert [r["kind"] for r in outbox(db, tenant)] == ["resolved", "resolved"]

    def test_switches_off_and_no_sender_enqueue_nothing(
        self, db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, settings_api: HandlerClient
    ) -> None:
        ticket = new_ticket(tickets_api)  # no email settings at all: no sender
        reply_as_agent(tickets_api, ticket["id"], "hello")
        assert outbox(db, tenant) == []
        configure(
            settings_api,
            "support@shop.example",
            notifyReceived=False,
            notifyReplied=False,
            notifyResolved=False,
            notifyClosed=False,
        )
        ticket = new_ticket(tickets_api)
        reply_as_agent(tickets_api, ticket["id"], "hello")
        resolve(tickets_api, ticket["id"])
        assert tickets_api.post(f"{BASE}/{ticket['id']}/close").status == 200
        assert outbox(db, tenant) == []
        configure(settings_api, "support@shop.example", notifyReceived=False, notifyResolved=False)
        reply_as_agent(tickets_api, new_ticket(tickets_api)["id"], "only this")
        assert [r["kind"] for r in outbox(db, tenant)] == ["replied"]

    def test_a_rolled_back_change_sends_nothing(
        self, db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, settings_api: HandlerClient, sender: str
    ) -> None:
        configure(settings_api, sender, notifyReceived=False)
        ticket = new_ticket(tickets_api)

        class Undone(Exception):
            pass

        # Given a change that enqueued its notice and then failed (its transaction rolls back)
        def close_then_fail() -> None:
            with tenant_transaction(tenant) as cur:
                cur.execute(
                    "UPDATE support_tickets SET status = 'closed' WHERE user_id = %s AND id = %s",
                    (tenant, ticket["id"]),
                )
                assert email_outbox.notify(cur, tenant, UUID(ticket["id"]), email_outbox.CLOSED)
                raise Undone

        with pytest.raises(Undone):
            close_then_fail()
        assert outbox(db, tenant) == []
        # When the outbox is drained; Then nothing was sent
        drain()
        assert mails_of(ticket["id"]) == []
        assert tickets_api.get(f"{BASE}/{ticket['id']}").data["status"] == "open"


# --- the drain ----------------------------------------------------------------------------------------------------


class TestDrain:
    def test_mime_headers_and_threading(
        self, db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, settings_api: HandlerClient, sender: str
    ) -> None:
        configure(settings_api, sender)
        ticket = new_ticket(tickets_api, customerName="Ana Lima", subject="Order 1043\narrived damaged")
        assert drain().sent >= 1
        reply_as_agent(tickets_api, ticket["id"], "We are sending a new one.\n\nSorry <b>again</b>.")
        resolve(tickets_api, ticket["id"])
        assert drain().sent >= 2
        rows = {r["kind"]: r for r in outbox(db, tenant)}
        by_id = {m.message["Message-ID"]: m for m in mails_of(ticket["id"])}
        assert len(by_id) == 3
        received, replied, resolved = (by_id[rows[kind]["message_id"]] for kind in ("received", "replied", "resolved"))
        assert {r["state"] for r in rows.values()} == {"sent"}
        for mail, kind in ((received, "received"), (replied, "replied"), (resolved, "resolved")):
            message = mail.message
            assert message["Message-ID"] == rows[kind]["message_id"]
            assert mail.ses_message_id == rows[kind]["ses_message_id"]
            # the reference first, in brackets, where the inbound parser finds it again on the customer's answer
            assert message["Subject"] == f"[{ticket['reference']}] Order 1043 arrived damaged"
            assert f"#{reference_in_subject('Re: ' + message['Subject'])}" == ticket["reference"]
            assert message["From"] == f"Shop Support <{sender}>"
            assert message["To"] == f"Ana Lima <{ticket['customerEmail']}>"
            assert message.get_content_type() == "multipart/alternative"
            parts = [part.get_content_type() for part in message.iter_parts()]
            assert parts == ["text/plain", "text/html"]
        # automatic notices carry Auto-Submitted, an agent's reply does not
        assert received.message["Auto-Submitted"] == "auto-replied"
        assert resolved.message["Auto-Submitted"] == "auto-replied"
        assert replied.message["Auto-Submitted"] is None
        # threading: each mail names the ticket's earlier desk mails
        assert received.message["In-Reply-To"] is None
        assert replied.message["In-Reply-To"] == received.message["Message-ID"]
        assert replied.message["References"] == received.message["Message-ID"]
        assert resolved.message["In-Reply-To"] == replied.message["Message-ID"]
        assert resolved.message["References"].split() == [
            received.message["Message-ID"],
            replied.message["Message-ID"],
        ]
        # the reply's text, escaped in the HTML; the resolved notice says how to rate
        text = replied.message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # sent with CRLF line ends
        assert "We are sending a new one.\n\nSorry <b>again</b>." in text
        assert "Sorry &lt;b&gt;again&lt;/b&gt;." in replied.message.get_body(("html",)).get_content()
        assert "rating from 1 (poor) to 5 (excellent)" in resolved.message.get_body(("plain",)).get_content()

    def test_addresses_beyond_ascii_go_out_in_their_ascii_form(self, settings_api: HandlerClient) -> None:
        # an internationalised domain travels as IDNA; a local part beyond ASCII cannot be sent by SES at all
        assert email_outbox.ascii_address("ana@bücher.example") == ("ana", "xn--bcher-kva.example")
        assert email_outbox.ascii_address("ana@shop.example") == ("ana", "shop.example")
        with pytest.raises(ValueError, match="not ASCII"):
            email_outbox.ascii_address("jöran@shop.example")
        answer = settings_api.put(SETTINGS, {"fromAddress": "desk@bücher.example"})
        assert answer.status == 200, answer.body
        assert settings_api.get(SETTINGS).body["data"]["fromAddress"] == "desk@xn--bcher-kva.example"

    def test_a_network_failure_is_retried_later_and_sent_once(
        self,
        db: DatabaseUrls,
        tenant: UUID,
        tickets_api: HandlerClient,
        settings_api: HandlerClient,
        sender: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        configure(settings_api, sender)
        ticket = new_ticket(tickets_api)
        with socket.socket() as probe:  # a port nobody listens on: the connection is refused
            probe.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
        live = os.environ[local_ses.ENDPOINT_VARIABLE]
        monkeypatch.setenv(local_ses.ENDPOINT_VARIABLE, dead)
        # When SES cannot be reached; Then the notice waits with a backoff, and nothing was sent
        assert drain().retried >= 1
        (row,) = outbox(db, tenant)
        assert (row["state"], row["attempts"]) == ("pending", 1)
        assert "EndpointConnectionError" in row["last_error"] or "Connect" in row["last_error"]
        assert row["next_attempt_at"] > row["updated_at"]
        assert drain().sent == 0 or mails_of(ticket["id"]) == []  # not due yet: not taken again
        assert outbox(db, tenant)[0]["attempts"] == 1
        # When SES is back and the row is due; Then it is sent, once
        monkeypatch.setenv(local_ses.ENDPOINT_VARIABLE, live)
        make_due(db, tenant)
        drain()
        drain()
        (row,) = outbox(db, tenant)
        assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 2, None)
        assert len(mails_of(ticket["id"])) == 1

    def test_ses_answers_are_classified_and_backoff_grows(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from email.message import EmailMessage

        from botocore.exceptions import ClientError

        assert [email_outbox.backoff(n).total_seconds() for n in (1, 2, 3, 8, 20)] == [30, 60, 120, 3600, 3600]
        mail = email_outbox.Mail(
            uuid4(),
            uuid4(),
            1,
            "received",
            "a@example.com",
            "<x@shop.example>",
            {},
            email_outbox.EmailSettings(fromAddress="s@shop.example"),
        )
        for code, status, permanent in (
            ("Throttling", 400, False),
            ("ServiceUnavailable", 503, False),
            ("InternalFailure", 500, False),
            ("MessageRejected", 400, True),
            ("MailFromDomainNotVerifiedException", 400, True),
        ):
            error = ClientError(
                {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                "SendRawEmail",
            )

            class Refusing:
                def send_raw_email(self, **_: Any) -> Any:
                    raise error  # noqa: B023

            monkeypatch.setattr(email_outbox, "ses_client", Refusing)
            with pytest.raises(email_outbox.SendFailure) as failure:
                email_outbox.send_with_ses(mail, EmailMessage())
            assert failure.value.permanent is permanent, code

    def test_a_permanent_refusal_fails_and_is_recorded_on_the_ticket(
        self, db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, settings_api: HandlerClient, ses: str
    ) -> None:
        configure(settings_api, f"unverified@never-{uuid4().hex[:8]}.example")  # moto refuses: MessageRejected
        ticket = new_ticket(tickets_api)
        assert drain().failed >= 1
        (row,) = outbox(db, tenant)
        assert row["state"] == "failed" and row["attempts"] == 1
        assert row["last_error"].startswith("MessageRejected")
        thread = tickets_api.get(f"{BASE}/{ticket['id']}/conversations").data
        notes = [m for m in thread if m["senderType"] == "system"]
        assert len(notes) == 1 and notes[0]["isInternal"] is True
        assert notes[0]["message"].startswith(
            f"The received email to {ticket['customerEmail']} failed: MessageRejected"
        )
        make_due(db, tenant)
        drain()
        assert outbox(db, tenant)[0]["attempts"] == 1  # a failed notice is never taken again

    def test_too_many_attempts_fail(
        self, db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, settings_api: HandlerClient, sender: str
    ) -> None:
        configure(settings_api, sender)
        ticket = new_ticket(tickets_api)
        with psycopg.connect(db.admin) as conn:
            conn.execute(
                "UPDATE email_outbox SET attempts = %s WHERE user_id = %s", (email_outbox.MAX_ATTEMPTS - 1, tenant)
            )

        def unavailable(mail: email_outbox.Mail, message: Any) -> str:
            raise email_outbox.SendFailure("ServiceUnavailable: try later", permanent=False)

        drain(send=unavailable)
        (row,) = outbox(db, tenant)
        assert row["state"] == "failed" and row["attempts"] == email_outbox.MAX_ATTEMPTS
        assert "gave up after 8 attempts" in row["last_error"]
        assert mails_of(ticket["id"]) == []

    def test_an_expired_lease_is_claimed_again(
        self, db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, settings_api: HandlerClient, sender: str
    ) -> None:
        configure(settings_api, sender)
        ticket = new_ticket(tickets_api)
        # Given a worker that claimed the row and died before marking it
        claimed = [r for r in email_outbox.claim(1000) if r["user_id"] == tenant]
        assert len(claimed) == 1
        assert outbox(db, tenant)[0]["state"] == "sending"
        assert [r for r in email_outbox.claim(1000) if r["user_id"] == tenant] == []  # leased: not taken again
        # When the lease runs out; Then the next drain sends it
        make_due(db, tenant)
        drain()
        (row,) = outbox(db, tenant)
        assert (row["state"], row["attempts"]) == ("sent", 2)
        assert len(mails_of(ticket["id"])) == 1

    def test_two_concurrent_drains_send_each_notification_once(
        self,
        db: DatabaseUrls,
        tenant: UUID,
        tickets_api: HandlerClient,
        settings_api: HandlerClient,
        sender: str,
        connection_per_thread: None,
    ) -> None:
        configure(settings_api, sender)
        tickets = [new_ticket(tickets_api) for _ in range(30)]
        for ticket in tickets:
            reply_as_agent(tickets_api, ticket["id"], "on it")
        results = run_together([lambda: drain(batch=7), lambda: drain(batch=7)])
        assert not [r for r in results if isinstance(r, Exception)], results
        rows = outbox(db, tenant)
        assert len(rows) == 60 and {r["state"] for r in rows} == {"sent"}
        assert {r["attempts"] for r in rows} == {1}
        sent = [m for t in tickets for m in mails_of(t["id"])]
        assert len(sent) == 60
        assert len({m.message["Message-ID"] for m in sent}) == 60
        assert results[0].sent > 0 and results[1].sent > 0  # both worked


# --- bounces and complaints --------------------------------------------------------------------------------------


def _sns_event(kind: str, ses_message_id: str, address: str) -> dict[str, Any]:
    event = json.loads((EVENTS / f"sns_{kind}.json").read_text())
    notification = json.loads(event["Records"][0]["Sns"]["Message"])
    notification["mail"]["messageId"] = ses_message_id
    for recipient in notification.get("bounce", notification.get("complaint", {})).get(
        "bouncedRecipients", notification.get("complaint", {}).get("complainedRecipients", [])
    ):
        recipient["emailAddress"] = address
    event["Records"][0]["Sns"]["Message"] = json.dumps(notification)
    return event


class TestSuppression:
    @pytest.mark.parametrize("kind", ["bounce", "complaint"])
    def test_a_bounce_or_complaint_stops_further_mail(
        self,
        db: DatabaseUrls,
        tenant: UUID,
        other_tenant: UUID,
        tickets_api: HandlerClient,
        settings_api: HandlerClient,
        sender: str,
        kind: str,
    ) -> None:
        from functions.email_outbox import app

        configure(settings_api, sender)
        address = f"gone-{uuid4().hex[:8]}@example.com"
        ticket = new_ticket(tickets_api, customerEmail=address)
        reply_as_agent(tickets_api, ticket["id"], "first")
        drain()
        sent = outbox(db, tenant)
        # Given a reply pending when the bounce arrives
        pending = reply_as_agent(tickets_api, ticket["id"], "second")
        # When SES reports a permanent bounce (or a complaint) of the first mail
        answer = app.lambda_handler(_sns_event(kind, sent[0]["ses_message_id"], address.upper()), CONTEXT())
        assert answer == {"ok": True, "suppressed": 1}
        with psycopg.connect(db.admin) as conn:
            reasons = conn.execute(
                "SELECT user_id, address, reason FROM email_suppressions WHERE address = %s", (address,)
            ).fetchall()
        assert reasons == [(tenant, address, kind)]
        # Then the pending reply is not sent, and no new notice is enqueued
        drain()
        rows = {str(r["conversation_id"]): r for r in outbox(db, tenant)}
        assert rows[pending["id"]]["state"] == "failed"
        assert f"suppressed after a {kind}" in rows[pending["id"]]["last_error"]
        reply_as_agent(tickets_api, ticket["id"], "third")
        assert len(outbox(db, tenant)) == 3
        assert len(mails_of(ticket["id"])) == 2  # received and the first reply, nothing since
        # Another tenant's mail to the same address is not stopped by this tenant's suppression
        other_settings = settings_api.as_tenant(other_tenant)
        configure(other_settings, sender)
        other_ticket = new_ticket(tickets_api.as_tenant(other_tenant), customerEmail=address)
        assert len(outbox(db, other_tenant)) == 1 and other_ticket

    def test_a_transient_bounce_and_an_unknown_message_suppress_nothing(self, db: DatabaseUrls) -> None:
        from functions.email_outbox import app

        event = _sns_event("bounce", "not-a-message-of-this-desk", "x@example.com")
        assert app.lambda_handler(event, CONTEXT()) == {"ok": True, "suppressed": 0}
        notification = json.loads(event["Records"][0]["Sns"]["Message"])
        notification["bounce"]["bounceType"] = "Transient"
        assert email_outbox.record_ses_notification(notification) == 0

    def test_the_sample_events_run(self, db: DatabaseUrls, ses: str) -> None:
        from functions.email_outbox import app

        for name in ("sns_bounce", "sns_complaint"):
            event = json.loads((EVENTS / f"{name}.json").read_text())
            assert app.lambda_handler(event, CONTEXT())["ok"] is True
        scheduled = json.loads((EVENTS / "scheduled.json").read_text())
        answer = app.lambda_handler(scheduled, CONTEXT())
        assert answer["ok"] is True and set(answer) == {"ok", "sent", "retried", "failed"}
