"""Webhooks: endpoints, the outbox written with the change, delivery through the real moto SQS and the real handler
to real receivers on 127.0.0.1 (HTTP and HTTPS), signatures verified with docs/webhooks.md's own snippet, retries,
the day's window, the address checks at creation and at delivery, tenant isolation and secret rotation."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local import sqs as local_sqs
from local.database import DatabaseUrls
from local.ses import LocalSes
from support import webhook_http
from support.config import get_settings
from support.services import webhooks
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import new_agent, new_ticket

BASE = "/api/support/webhooks"
REPO = Path(__file__).resolve().parents[2]


def _doc_verify() -> Any:
    """The `verify` function of docs/webhooks.md's snippet, run as it is written there."""
    text = (REPO / "docs" / "webhooks.md").read_text()
    section = text.split("## Verifying the signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/webhooks.md", "exec"), namespace)  # noqa: S102 (our own documentation)
    return namespace["verify"]


@dataclass
class Receiver:
    """A threaded http.server on 127.0.0.1 that records every POST and answers the next status of `statuses`."""

    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    server: Any = None

    def start(self, context: ssl.SSLContext | None = None) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers.items()), "body": body})
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def queue(moto: LocalSes, moto_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[local_sqs.Queue]:
    """The real moto SQS: a fresh queue, the functions pointed at it, retries' hops without a delay (the tests' clock
    decides when an attempt is due)."""
    monkeypatch.setenv(local_sqs.ENDPOINT_VARIABLE, moto.endpoint)
    made = local_sqs.create_queue(moto.endpoint, f"hooks-{uuid4().hex}", dead_letters=None)
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", made.url)
    monkeypatch.setenv("WEBHOOK_MAX_HOP_SECONDS", "0")
    monkeypatch.delenv("WEBHOOK_FUNCTION_NAME", raising=False)
    get_settings.cache_clear()
    yield made
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def local_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("WEBHOOKS_ALLOW_LOCAL_HTTP", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("WEBHOOKS_ALLOW_LOCAL_HTTP")
    get_settings.cache_clear()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Our resolver seam, fed the tests' own answers (a name absent here does not resolve)."""
    answers: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(f"{host} does not resolve")
        return answers[host]

    monkeypatch.setattr(webhook_http, "RESOLVER", resolve)
    return answers


@pytest.fixture
def hooks_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.webhooks import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


@pytest.fixture
def tickets(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.tickets import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def poller(moto: LocalSes, queue: local_sqs.Queue, handler: Any = None) -> local_sqs.Poller:
    from functions.webhook_delivery import app

    return local_sqs.Poller(moto.endpoint, queue, handler or app.lambda_handler, wait_seconds=0)


@dataclass
class Desk:
    """The tenant's desk with its webhooks delivered through the real moto SQS: the webhooks and tickets APIs, the
    delivery queue, and the database (the outbox, read as the admin)."""

    db: DatabaseUrls
    moto: LocalSes
    queue: local_sqs.Queue
    hooks_api: HandlerClient
    tickets: HandlerClient

    def poller(self, handler: Any = None) -> local_sqs.Poller:
        """The delivery function (or `handler`) polling the delivery queue."""
        return poller(self.moto, self.queue, handler)


@pytest.fixture
def desk(
    db: DatabaseUrls, moto: LocalSes, queue: local_sqs.Queue, hooks_api: HandlerClient, tickets: HandlerClient
) -> Desk:
    return Desk(db, moto, queue, hooks_api, tickets)


def at_clock(now: dt.datetime) -> Any:
    """The delivery function's work with the tests' clock (the handler reads the real one)."""
    return lambda event, _context: {
        "batchItemFailures": [
            {"itemIdentifier": i} for i in webhooks.deliver_messages(event["Records"], now=now).unprocessed
        ]
    }


def new_webhook(api: HandlerClient, url: str, events: list[str] | None = None) -> dict[str, Any]:
    reply = api.post(BASE, {"url": url, "events": events or ["ticket.created"]})
    assert reply.status == 201, reply.body
    return dict(reply.data)


def deliveries(db: DatabaseUrls, endpoint_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(db.admin, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT * FROM webhook_deliveries WHERE endpoint_id = %s ORDER BY created_at", (endpoint_id,)
        ).fetchall()


class TestEndpoints:
    def test_create_list_get_update_delete(
        self, hooks_api: HandlerClient, receiver: Receiver, local_http: None
    ) -> None:
        made = new_webhook(hooks_api, f"http://127.0.0.1:{receiver.port}/hook", ["ticket.created", "chat.ended"])
        assert made["secret"].startswith("whsec_") and made["events"] == ["ticket.created", "chat.ended"]
        listed = hooks_api.get(BASE, query={"limit": 1})
        assert [w["id"] for w in listed.data] == [made["id"]] and "secret" not in listed.data[0]
        changed = hooks_api.patch(f"{BASE}/{made['id']}", {"events": ["feedback.received"], "enabled": False})
        assert changed.status == 200, changed.body
        assert changed.data["events"] == ["feedback.received"] and changed.data["enabled"] is False
        assert "secret" not in hooks_api.get(f"{BASE}/{made['id']}").data
        assert hooks_api.delete(f"{BASE}/{made['id']}").status == 200
        assert hooks_api.get(f"{BASE}/{made['id']}").status == 404

    def test_unknown_events_and_plain_http_are_refused(
        self, hooks_api: HandlerClient, dns: dict[str, list[str]]
    ) -> None:
        dns["hooks.example.com"] = ["93.184.216.34"]
        unknown = hooks_api.post(BASE, {"url": "https://hooks.example.com/x", "events": ["ticket.deleted"]})
        assert unknown.status == 422, unknown.body
        plain = hooks_api.post(BASE, {"url": "http://hooks.example.com/x", "events": ["ticket.created"]})
        assert plain.status == 422 and "https" in plain.body["error"]["message"]
        assert hooks_api.post(BASE, {"url": "https://hooks.example.com/x", "events": ["ticket.created"]}).status == 201

    @pytest.mark.parametrize(
        "address",
        [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.9",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "224.0.0.1",
            "0.0.0.0",  # noqa: S104 (an address refused, not bound)
            "100.64.0.1",
            "::ffff:10.0.0.1",
        ],
    )
    def test_an_internal_address_is_refused_at_creation(
        self, hooks_api: HandlerClient, dns: dict[str, list[str]], address: str
    ) -> None:
        dns["inside.example.com"] = ["93.184.216.34", address]  # one bad answer among good ones is enough
        reply = hooks_api.post(BASE, {"url": "https://inside.example.com/hook", "events": ["ticket.created"]})
        assert reply.status == 422, reply.body
        literal = hooks_api.post(
            BASE,
            {
                "url": f"https://[{address}]/x" if ":" in address else f"https://{address}/x",
                "events": ["ticket.created"],
            },
        )
        assert literal.status == 422, literal.body

    def test_a_host_that_does_not_resolve_is_refused(self, hooks_api: HandlerClient, dns: dict[str, list[str]]) -> None:
        reply = hooks_api.post(BASE, {"url": "https://nowhere.example.com/x", "events": ["ticket.created"]})
        assert reply.status == 422 and "resolve" in reply.body["error"]["message"]

    def test_agents_may_not_manage_webhooks(self, hooks_api: HandlerClient, tenant: UUID) -> None:
        agent = hooks_api.as_tenant(tenant, role="agent")
        assert agent.get(BASE).status == 403
        assert agent.post(BASE, {"url": "https://a.example.com/x", "events": ["ticket.created"]}).status == 403


class TestOutbox:
    def test_events_are_written_with_the_change_only_for_subscribed_endpoints(
        self, db: DatabaseUrls, hooks_api: HandlerClient, tickets: HandlerClient, local_http: None
    ) -> None:
        every = new_webhook(
            hooks_api,
            "http://127.0.0.1:9/all",
            [
                "ticket.created",
                "ticket.status_changed",
                "ticket.assigned",
                "ticket.message_created",
                "feedback.received",
            ],
        )
        only_created = new_webhook(hooks_api, "http://127.0.0.1:9/created", ["ticket.created"])
        agent = new_agent(tickets)
        ticket = new_ticket(tickets)
        assert tickets.post(f"/api/support/tickets/{ticket['id']}/assign", {"agentId": agent["id"]}).status == 200
        reply = {"senderType": "agent", "senderName": "Grace", "message": "On its way"}
        assert tickets.post(f"/api/support/tickets/{ticket['id']}/conversations", reply).status == 201
        assert tickets.patch(f"/api/support/tickets/{ticket['id']}", {"status": "resolved"}).status == 200
        assert tickets.post(f"/api/support/tickets/{ticket['id']}/feedback", {"rating": 5}).status == 201
        events = [d["event"] for d in deliveries(db, every["id"])]
        assert events.count("ticket.created") == 1 and "ticket.assigned" in events
        assert "ticket.message_created" in events and "feedback.received" in events
        assert events.count("ticket.status_changed") >= 1
        assert [d["event"] for d in deliveries(db, only_created["id"])] == ["ticket.created"]
        # one event, one id, shared by its deliveries to both endpoints
        created = [
            d
            for d in deliveries(db, every["id"]) + deliveries(db, only_created["id"])
            if d["event"] == "ticket.created"
        ]
        assert len({d["event_id"] for d in created}) == 1 and len({d["id"] for d in created}) == 2
        assert created[0]["payload"]["data"]["id"] == ticket["id"]

    def test_a_chats_start_messages_end_and_rating_are_events(
        self, db: DatabaseUrls, hooks_api: HandlerClient, tenant: UUID, local_http: None
    ) -> None:
        from functions.chat import app as chat_app
        from support.models.chat import ChatRating
        from support.services import chat
        from tests.integration.test_chat_api import as_visitor, end, new_session, post_message

        hook = new_webhook(
            hooks_api,
            "http://127.0.0.1:9/chats",
            ["chat.started", "chat.message_created", "chat.ended", "feedback.received"],
        )
        chats = HandlerClient(chat_app.lambda_handler, tenant=tenant)
        session = new_session(chats)
        post_message(chats, session["id"], "customer", "Is my parcel lost?")
        end(chats, session["id"])
        chat.rate_chat_session(as_visitor(chats, session["id"]), UUID(session["id"]), ChatRating(rating=4))
        rows = deliveries(db, hook["id"])
        assert [r["event"] for r in rows] == ["chat.started", "chat.message_created", "chat.ended", "feedback.received"]
        assert all(r["payload"]["data"].get("sessionId", r["payload"]["data"].get("id")) == session["id"] for r in rows)
        assert rows[1]["payload"]["data"]["message"] == "Is my parcel lost?"
        assert rows[3]["payload"]["data"]["rating"] == 4

    def test_a_desk_without_endpoints_writes_nothing(
        self, db: DatabaseUrls, tickets: HandlerClient, tenant: UUID
    ) -> None:
        new_ticket(tickets)
        with psycopg.connect(db.admin) as conn:
            row = conn.execute("SELECT count(*) FROM webhook_deliveries WHERE user_id = %s", (tenant,)).fetchone()
        assert row == (0,)


class TestDelivery:
    def test_a_delivery_is_signed_and_verifiable_over_https_with_the_name_as_sni(
        self,
        desk: Desk,
        dns: dict[str, list[str]],
        local_http: None,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        context = _tls_for("receiver.test", tmp_path, monkeypatch)
        server = Receiver().start(context)
        try:
            dns["receiver.test"] = ["127.0.0.1"]
            hook = new_webhook(desk.hooks_api, f"https://receiver.test:{server.port}/hook")
            ticket = new_ticket(desk.tickets)  # the kick after the commit hands the delivery to SQS
            assert desk.poller().drain() == 1
        finally:
            server.stop()
        assert len(server.requests) == 1, [(d["state"], d["last_error"]) for d in deliveries(desk.db, hook["id"])]
        [request] = server.requests
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["host"] == f"receiver.test:{server.port}"
        assert headers["x-support-event"] == "ticket.created"
        verify = _doc_verify()
        assert verify(hook["secret"], headers["x-support-signature"], request["body"])
        assert not verify(hook["secret"], headers["x-support-signature"], request["body"] + b" ")
        assert not verify("whsec_other", headers["x-support-signature"], request["body"])
        body = json.loads(request["body"])
        assert body["type"] == "ticket.created" and body["data"]["id"] == ticket["id"]
        log = desk.hooks_api.get(f"{BASE}/{hook['id']}/deliveries")
        [entry] = log.data
        assert entry["id"] == headers["x-support-delivery"]
        assert (entry["state"], entry["attempts"], entry["responseStatus"]) == ("delivered", 1, 200)
        assert entry["durationMs"] is not None and entry["completedAt"] is not None

    def test_a_500_is_retried_with_the_same_delivery_id_and_nothing_doubled(
        self,
        desk: Desk,
        receiver: Receiver,
        local_http: None,
    ) -> None:
        receiver.statuses = [500, 200]
        hook = new_webhook(desk.hooks_api, f"http://127.0.0.1:{receiver.port}/hook")
        new_ticket(desk.tickets)
        start = dt.datetime.now(dt.UTC)
        # (one receive: the retry's message is visible at once here, its time not yet come)
        assert desk.poller(at_clock(start)).poll_once(wait_seconds=0) == 1
        [row] = deliveries(desk.db, hook["id"])
        assert (row["state"], row["attempts"], row["response_status"]) == ("queued", 1, 500)
        # early (before its 30 s): the message is sent on, no attempt
        assert desk.poller(at_clock(start + dt.timedelta(seconds=5))).poll_once(wait_seconds=0) == 1
        assert len(receiver.requests) == 1
        # due: the second attempt
        assert desk.poller(at_clock(start + dt.timedelta(seconds=31))).drain() == 1
        assert [r["headers"]["X-Support-Delivery"] for r in receiver.requests] == [str(row["id"])] * 2
        [row] = deliveries(desk.db, hook["id"])
        assert (row["state"], row["attempts"], row["response_status"]) == ("delivered", 2, 200)
        # a copy of the message arriving later (SQS delivers at least once) sends nothing more
        webhooks._send([("0", webhooks._message(row["user_id"], [row["id"]], start), 0, [row["id"]])])
        assert desk.poller().drain() == 1
        assert len(receiver.requests) == 2

    def test_a_delivery_is_failed_once_its_day_has_passed(
        self,
        desk: Desk,
        receiver: Receiver,
        local_http: None,
    ) -> None:
        receiver.statuses = [503]
        hook = new_webhook(desk.hooks_api, f"http://127.0.0.1:{receiver.port}/hook")
        new_ticket(desk.tickets)
        start = dt.datetime.now(dt.UTC)
        assert desk.poller(at_clock(start)).poll_once(wait_seconds=0) == 1
        assert desk.poller(at_clock(start + dt.timedelta(hours=25))).drain() == 1
        [row] = deliveries(desk.db, hook["id"])
        assert (row["state"], row["attempts"], row["response_status"]) == ("failed", 2, 503)
        assert desk.poller().drain() == 0  # nothing more is sent
        assert desk.hooks_api.get(f"{BASE}/{hook['id']}/deliveries").data[0]["state"] == "failed"

    def test_the_backoff_grows_and_stays_within_the_day(self) -> None:
        waits = [webhooks.next_attempt_after(n) for n in range(1, 14)]
        assert waits[:3] == [dt.timedelta(seconds=30), dt.timedelta(seconds=60), dt.timedelta(seconds=120)]
        assert waits == sorted(waits) and max(waits) == dt.timedelta(hours=6)

    @pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "169.254.169.254"])
    def test_a_name_that_resolves_inside_at_delivery_is_not_called(
        self,
        desk: Desk,
        dns: dict[str, list[str]],
        address: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # the setting that allows local receivers is OFF here: the defence as deployed
        assert get_settings().webhooks_allow_local_http is False
        # an internal service on 127.0.0.1 that would accept the call (TLS for the name, trusted)
        receiver = Receiver().start(_tls_for("hooks.example.com", tmp_path, monkeypatch))
        try:
            dns["hooks.example.com"] = ["93.184.216.34"]
            hook = new_webhook(desk.hooks_api, f"https://hooks.example.com:{receiver.port}/hook")
            dns["hooks.example.com"] = [address]  # rebinding: the name now points inside
            new_ticket(desk.tickets)
            assert desk.poller().poll_once(wait_seconds=0) == 1
        finally:
            receiver.stop()
        assert receiver.requests == []
        [row] = deliveries(desk.db, hook["id"])
        assert row["state"] == "queued" and row["attempts"] == 1 and row["response_status"] is None
        assert row["last_error"].startswith("refused:") and address in row["last_error"]


class TestTenancyAndRotation:
    def test_another_tenants_endpoint_is_not_found_and_gets_nothing_of_theirs(
        self,
        desk: Desk,
        receiver: Receiver,
        other_tenant: UUID,
        local_http: None,
    ) -> None:
        hook = new_webhook(desk.hooks_api, f"http://127.0.0.1:{receiver.port}/hook")
        other = desk.hooks_api.as_tenant(other_tenant)
        path = f"{BASE}/{hook['id']}"
        assert other.get(path).status == 404
        assert other.patch(path, {"enabled": False}).status == 404
        assert other.post(f"{path}/secret/rotate").status == 404
        assert other.get(f"{path}/deliveries").status == 404
        assert other.delete(path).status == 404
        assert other.get(BASE).data == []
        new_ticket(desk.tickets.as_tenant(other_tenant))  # the other desk's ticket
        desk.poller().drain()
        assert receiver.requests == [] and deliveries(desk.db, hook["id"]) == []

    def test_after_a_rotation_both_secrets_sign_for_the_overlap_then_the_new_one(
        self,
        desk: Desk,
        receiver: Receiver,
        local_http: None,
    ) -> None:
        hook = new_webhook(desk.hooks_api, f"http://127.0.0.1:{receiver.port}/hook")
        rotated = desk.hooks_api.post(f"{BASE}/{hook['id']}/secret/rotate")
        assert rotated.status == 200 and rotated.data["secret"] != hook["secret"]
        assert rotated.data["previousSecretValidUntil"] is not None
        verify = _doc_verify()
        new_ticket(desk.tickets)
        desk.poller().drain()
        header, body = receiver.requests[0]["headers"]["X-Support-Signature"], receiver.requests[0]["body"]
        assert header.count("v1=") == 2
        assert verify(rotated.data["secret"], header, body) and verify(hook["secret"], header, body)
        # after the overlap (the tests' clock, a day on), only the new secret signs
        new_ticket(desk.tickets)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
        desk.poller(at_clock(later)).drain()
        header, body = receiver.requests[1]["headers"]["X-Support-Signature"], receiver.requests[1]["body"]
        assert header.count("v1=") == 1
        stamp = later.timestamp()
        assert verify(rotated.data["secret"], header, body, now=stamp)
        assert not verify(hook["secret"], header, body, now=stamp)


class TestSweep:
    def test_the_sweep_dispatches_what_the_request_path_left_pending(
        self,
        desk: Desk,
        receiver: Receiver,
        local_http: None,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        hook = new_webhook(desk.hooks_api, f"http://127.0.0.1:{receiver.port}/hook")
        # the dispatch after the commit finds no queue (as when SQS refused it): the rows stay pending
        monkeypatch.delenv("WEBHOOK_QUEUE_URL")
        get_settings.cache_clear()
        new_ticket(desk.tickets)
        assert deliveries(desk.db, hook["id"])[0]["state"] == "pending"
        monkeypatch.setenv("WEBHOOK_QUEUE_URL", desk.queue.url)
        get_settings.cache_clear()
        from functions.workflow_sweep import app as sweep_app

        result = sweep_app.run_steps(dt.datetime.now(dt.UTC))
        assert result["ok"] and result["steps"]["webhooks"] >= 1
        desk.poller().drain()
        assert len(receiver.requests) == 1 and deliveries(desk.db, hook["id"])[0]["state"] == "delivered"


class TestDeliveryLogRetention:
    def test_finished_deliveries_are_deleted_30_days_after_they_finished_in_each_tenant(
        self, desk: Desk, receiver: Receiver, local_http: None, other_tenant: UUID
    ) -> None:
        from functions.workflow_sweep import app as sweep_app

        # Given, in two tenants, deliveries in every state: finished 31 days ago (delivered, failed), finished 29
        # days ago, and still pending or queued although their event is older than that
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)  # the sweep's clock
        hook = new_webhook(desk.hooks_api, f"http://127.0.0.1:{receiver.port}/hook")
        for _ in range(5):
            new_ticket(desk.tickets)
        other_hook = new_webhook(desk.hooks_api.as_tenant(other_tenant), f"http://127.0.0.1:{receiver.port}/other")
        new_ticket(desk.tickets.as_tenant(other_tenant))
        [old_delivered, old_failed, young, queued, pending] = [row["id"] for row in deliveries(desk.db, hook["id"])]
        [other_old] = [row["id"] for row in deliveries(desk.db, other_hook["id"])]
        old, recent = now - dt.timedelta(days=31), now - dt.timedelta(days=29)
        states = {
            old_delivered: ("delivered", old),
            old_failed: ("failed", old),
            young: ("delivered", recent),
            queued: ("queued", None),
            pending: ("pending", None),
            other_old: ("delivered", old),
        }
        with psycopg.connect(desk.db.admin) as conn:
            for delivery_id, (state, completed_at) in states.items():
                conn.execute(
                    """UPDATE webhook_deliveries SET state = %s, completed_at = %s, created_at = %s,
                        next_attempt_at = CASE WHEN %s = 'queued' THEN %s END WHERE id = %s""",
                    (
                        state,
                        completed_at,
                        old - dt.timedelta(days=1),
                        state,
                        now + dt.timedelta(minutes=5),
                        delivery_id,
                    ),
                )

        def left() -> set[UUID]:
            with psycopg.connect(desk.db.admin) as conn:
                rows = conn.execute("SELECT id FROM webhook_deliveries WHERE id = ANY(%s)", (list(states),))
                return {row[0] for row in rows}

        step = [entry for entry in sweep_app.STEPS if entry[0] == "webhook_log"]
        # When the step runs with a clock 10 days ahead (a run by hand): the database's clock bounds it, so the
        # delivery finished 29 days ago stays
        ahead = sweep_app.run_steps(now + dt.timedelta(days=10), step)
        assert ahead["ok"], ahead
        assert young in left()
        # When the workflow sweep's `webhook_log` step runs with the schedule's clock
        result = sweep_app.run_steps(now, step)
        # Then the deliveries finished more than 30 days ago are gone in both tenants; the younger one, the queued and
        # the pending ones stay, and the delivery log route still shows them
        assert result["ok"] and ahead["steps"]["webhook_log"] + result["steps"]["webhook_log"] >= 3
        assert left() == {young, queued, pending}
        logged = desk.hooks_api.get(f"{BASE}/{hook['id']}/deliveries")
        assert logged.status == 200, logged.body
        assert {UUID(row["id"]) for row in logged.data} == {young, queued, pending}

    def test_the_runtime_role_cannot_make_a_young_delivery_prunable(
        self, desk: Desk, receiver: Receiver, local_http: None, tenant: UUID
    ) -> None:
        # Given a young delivery of the tenant (its event just now)
        hook = new_webhook(desk.hooks_api, f"http://127.0.0.1:{receiver.port}/hook")
        new_ticket(desk.tickets)
        [young] = [row["id"] for row in deliveries(desk.db, hook["id"])]
        # When the runtime role, which may record a delivery's outcome (UPDATE state, completed_at), marks it finished
        # long ago in the tenant's transaction and asks the prune function (SECURITY DEFINER) for the log's due rows
        with psycopg.connect(desk.db.app, autocommit=True) as conn, conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
            marked = conn.execute(
                """UPDATE webhook_deliveries SET state = 'delivered', completed_at = '2000-01-01T00:00:00Z'
                   WHERE id = %s""",
                (young,),
            )
            assert marked.rowcount == 1
            row = conn.execute(
                """SELECT webhook_prune_deliveries(%s, now(), 100),
                          (SELECT count(*) FROM webhook_log_tenants_due(now()) AS t WHERE t = %s)""",
                (tenant, tenant),
            ).fetchone()
        # Then nothing is deleted (it was created within the 30 days) and the lister does not name the tenant for it
        assert row == (0, 0)
        assert [r["id"] for r in deliveries(desk.db, hook["id"])] == [young]

    def test_a_run_stops_at_its_budget_and_the_next_goes_on(
        self, desk: Desk, receiver: Receiver, local_http: None, other_tenant: UUID
    ) -> None:
        # Given two tenants with finished deliveries past their 30 days
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        old = now - dt.timedelta(days=31)
        hooks = [
            new_webhook(api, f"http://127.0.0.1:{receiver.port}/hook")
            for api in (desk.hooks_api, desk.hooks_api.as_tenant(other_tenant))
        ]
        for tickets in (desk.tickets, desk.tickets.as_tenant(other_tenant)):
            for _ in range(2):
                new_ticket(tickets)
        with psycopg.connect(desk.db.admin) as conn:
            conn.execute(
                """UPDATE webhook_deliveries SET state = 'delivered', completed_at = %s, created_at = %s
                   WHERE endpoint_id = ANY(%s)""",
                (old, old - dt.timedelta(hours=1), [hook["id"] for hook in hooks]),
            )

        def due() -> dict[UUID, int]:  # every tenant's due rows (the session's other tests leave some too)
            with psycopg.connect(desk.db.admin) as conn:
                rows = conn.execute(
                    """SELECT user_id, count(*) FROM webhook_deliveries
                       WHERE state IN ('delivered', 'failed') AND completed_at < %s GROUP BY user_id""",
                    (now - dt.timedelta(days=30),),
                )
                return {row[0]: row[1] for row in rows}

        before = due()
        assert {desk.tickets.tenant, other_tenant} <= set(before)
        # When a run's time is up before its first tenant: it deletes nothing
        assert webhooks.prune_log(now, max_seconds=0) == 0
        assert due() == before
        # When a run may work on one tenant: one tenant's rows go, the others' stay
        pruned = webhooks.prune_log(now, max_tenants=1)
        after = due()
        changed = {t for t in before if after.get(t) != before[t]}
        assert len(changed) == 1 and set(after) <= set(before)
        assert pruned == sum(before.values()) - sum(after.values()) > 0
        # Then the next runs go on where it stopped, until both tenants' are gone
        for _ in range(len(before)):
            webhooks.prune_log(now, max_tenants=1)
        assert not {desk.tickets.tenant, other_tenant} & set(due())


def _tls_for(name: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A CA the delivery trusts (SSL_CERT_FILE, read by ssl.create_default_context) and a certificate for `name`
    alone: the TLS handshake succeeds only if the client sends `name` as SNI and verifies against it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


class TestSampleEvents:
    def test_the_delivery_functions_sample_events_run_through_its_handler(
        self, db: DatabaseUrls, queue: local_sqs.Queue
    ) -> None:
        from functions.webhook_delivery import app
        from local.gateway import LambdaContext

        context = LambdaContext(function_name="WebhookDeliveryFunction", memory_limit_in_mb=512, timeout_seconds=60)
        for name, expected in (("dispatch.json", {"queued": 0}), ("sqs_batch.json", {"batchItemFailures": []})):
            event = json.loads((REPO / "events" / "webhook_delivery" / name).read_text())
            assert app.lambda_handler(event, context) == expected  # (the sample's tenant has nothing: no work)


def test_a_privacy_erasure_deletes_the_deliveries_about_the_customer_and_keeps_the_others(
    db: DatabaseUrls, tenant: UUID, hooks_api: HandlerClient, tickets: HandlerClient, local_http: None
) -> None:
    from support.auth import Principal, Role
    from support.models.privacy import PrivacyRequestCreate
    from support.services import privacy

    # Given an endpoint that was told of a customer's ticket (its body names them) and of another customer's
    hook = new_webhook(hooks_api, "http://127.0.0.1:9/hook")
    for email in ("erase.hooks@example.com", "keep.hooks@example.com"):
        made = tickets.post(
            "/api/support/tickets", {"customerName": "Hook Person", "customerEmail": email, "subject": "Hi"}
        )
        assert made.status == 201, made.body
    assert len(deliveries(db, hook["id"])) == 2

    # When the admin erases the first customer
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="dpo")
    erasure = privacy.request_erasure(admin, PrivacyRequestCreate(customer_email="erase.hooks@example.com"))
    assert privacy.get_erasure(admin, erasure.id).state == "done"

    # Then no delivery names them any more, and the other customer's stays
    left = deliveries(db, hook["id"])
    assert [d["payload"]["data"]["customerEmail"] for d in left] == ["keep.hooks@example.com"]
