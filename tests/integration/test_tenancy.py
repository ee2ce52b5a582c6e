"""Tenant isolation: through the API (404, never another tenant's rows) and in the database itself (RLS)."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.db.connection import SET_TENANT
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import BASE, new_agent, new_ticket, resolve
from tests.integration.test_widgets_api import visitor_session

TENANT_TABLES = [
    "support_tickets",
    "ticket_conversations",
    "support_agents",
    "live_chat_sessions",
    "chat_messages",
    "canned_responses",
    "support_analytics",
    "ticket_feedback",
    # the dashboard's running totals (sql/0007)
    "ticket_totals",
    "chat_totals",
    "feedback_totals",
    # the dashboard's running totals per UTC day (sql/0021)
    "ticket_day_totals",
    "feedback_day_totals",
    # live chat in real time (sql/0011)
    "widget_keys",
    "ws_connections",
    "session_watchers",
    # the rollup's running totals (sql/0016)
    "support_analytics_cumulative",
    # visitor connect tokens spent on $connect (sql/0019)
    "visitor_connect_tokens",
    # settings per tenant and the public routes' rate limit counters (sql/0018)
    "tenant_settings",
    "rate_limit_counters",
    # staff broadcasts: a tenant's pending broadcast and the queue positions told (sql/0023)
    "broadcast_requests",
    "queue_positions_told",
    # contacts and the identities that find them (sql/0024)
    "support_contacts",
    "contact_identities",
    # email out: the addresses a tenant receives at, the outbox, suppressed recipients (sql/0026)
    "email_inbound_addresses",
    "email_outbox",
    "email_suppressions",
    # email in: each inbound message once per tenant (sql/0028)
    "inbound_emails",
    # social and other channels, and the messages they delivered (sql/0030)
    "support_channels",
    "channel_messages",
    # the SLA events the sweep records, and the compliance's running totals (sql/0033)
    "ticket_sla_events",
    "ticket_sla_totals",
    # automation rules, the tenants given the default rules, the events for the rules, their runs (sql/0034)
    "automation_rules",
    "automation_tenants",
    "automation_events",
    "automation_runs",
    # the Idempotency-Keys of the creates (sql/0037)
    "idempotency_keys",
    # privacy exports and erasures (sql/0039)
    "privacy_requests",
    # webhook endpoints and their deliveries, the outbox (sql/0042)
    "webhook_endpoints",
    "webhook_deliveries",
    # attachments: uploads and the messages that claimed them (sql/0041)
    "attachments",
    # the audit trail's entries, read only (sql/0038)
    "audit_entries",
]
# Row-level security ENABLEd but not FORCEd: the runtime role sees its tenant's rows only, and the owner's
# SECURITY DEFINER lookup can find a widget key before the tenant is known (sql/0011), and the email outbox's
# functions claim due rows of every tenant and find a bounce's tenant (sql/0026).
# sql/0028: email in's lookup of the tenant that receives at an address.
# sql/0030: a delivery finds its channel by id.
# sql/0033: the SLA sweep records the events of every tenant at once; sql/0034: the automation capture triggers
# look up rules and write events for any write, and the sweep lists tenants.
NOT_FORCED = {"widget_keys", "email_outbox", "email_inbound_addresses", "support_channels", "ticket_sla_events"}
NOT_FORCED |= {"automation_rules", "automation_tenants", "automation_events"}
# sql/0037: the workflow sweep's purge deletes the expired Idempotency-Keys of every tenant at once.
NOT_FORCED |= {"idempotency_keys"}
# sql/0039: the workflow sweep lists the privacy requests of every tenant whose run was lost.
NOT_FORCED |= {"privacy_requests"}
# sql/0042: the webhook capture triggers look up endpoints and write deliveries for any write; the sweep lists tenants.
NOT_FORCED |= {"webhook_endpoints", "webhook_deliveries"}
# sql/0038: the audit capture (the owner's trigger) writes entries whatever the session's tenant, and the sealer and
# the scheduled check chain every tenant at once.
NOT_FORCED |= {"audit_entries"}
# Tables with a user_id that the runtime role cannot touch at all (read only through SECURITY DEFINER functions).
# sql/0003, sql/0027; sql/0025: the reference counters (the owner's only, RLS not forced)
SIDE_TABLES = ["ticket_search_index", "canned_response_search", "canned_response_terms", "ticket_reference_counters"]
# sql/0030: the channels' signing secrets and the signatures seen (the owner's SECURITY DEFINER functions only)
SIDE_TABLES += ["support_channel_secrets", "channel_signatures_seen"]
# sql/0033: the SLA sweep's queue (the owner's trigger and sla_sweep only)
SIDE_TABLES += ["ticket_sla_checks"]
# sql/0042: the webhooks' signing secrets (the owner's SECURITY DEFINER functions only)
SIDE_TABLES += ["webhook_secrets"]
# sql/0040: what the figures still count of the tickets and chats the retention job deleted (the owner's functions)
SIDE_TABLES += ["retention_ticket_tombstones", "retention_chat_tombstones"]
# sql/0038: the audit's personal values (erasable, the owner's functions only) and the chains' heads
SIDE_TABLES += ["audit_personal_values", "audit_chain_state"]
# sql/0025: the references' backfill progress, the owner's only and empty once the backfill is done
PROGRESS_TABLES = ["ticket_reference_backfill"]


@pytest.fixture
def tenant_a_data(tickets_api: HandlerClient) -> dict[str, Any]:
    """Tenant A: an agent, and a resolved ticket with a conversation and feedback."""
    agent = new_agent(tickets_api)
    ticket = new_ticket(tickets_api, subject="Secret merger paperwork", customerEmail="ceo@tenant-a.example")
    tickets_api.post(
        f"{BASE}/{ticket['id']}/conversations", {"senderType": "agent", "senderName": "CEO", "message": "hi"}
    )
    resolve(tickets_api, ticket["id"])
    tickets_api.post(f"{BASE}/{ticket['id']}/feedback", {"rating": 5})
    return {"ticket": ticket, "agent": agent}


def test_another_tenants_ids_answer_404_on_every_ticket_route(
    tickets_api: HandlerClient, other_tenant: UUID, tenant_a_data: dict[str, Any]
) -> None:
    b = tickets_api.as_tenant(other_tenant)
    a_ticket = tenant_a_data["ticket"]["id"]
    b_agent = new_agent(b)
    b_ticket = new_ticket(b)

    replies = {
        "get": b.get(f"{BASE}/{a_ticket}"),
        "patch": b.patch(f"{BASE}/{a_ticket}", {"priority": "low"}),
        "close": b.post(f"{BASE}/{a_ticket}/close"),
        "assign": b.post(f"{BASE}/{a_ticket}/assign", {"agentId": b_agent["id"]}),
        "list conversations": b.get(f"{BASE}/{a_ticket}/conversations"),
        "add conversation": b.post(
            f"{BASE}/{a_ticket}/conversations", {"senderType": "agent", "senderName": "B", "message": "x"}
        ),
        "get feedback": b.get(f"{BASE}/{a_ticket}/feedback"),
        "add feedback": b.post(f"{BASE}/{a_ticket}/feedback", {"rating": 1}),
        # B's own ticket with A's agent: the agent is not B's, so it does not exist for B.
        "assign A's agent": b.post(f"{BASE}/{b_ticket['id']}/assign", {"agentId": tenant_a_data["agent"]["id"]}),
        "patch with A's agent": b.patch(f"{BASE}/{b_ticket['id']}", {"assignedAgentId": tenant_a_data["agent"]["id"]}),
    }

    assert {name: r.status for name, r in replies.items()} == dict.fromkeys(replies, 404)
    assert all(r.error["code"] == "not_found" for r in replies.values())
    # and nothing of A's changed
    assert tickets_api.get(f"{BASE}/{a_ticket}").data["status"] == "resolved"


def test_lists_and_search_never_show_another_tenants_rows(
    tickets_api: HandlerClient, other_tenant: UUID, tenant_a_data: dict[str, Any]
) -> None:
    b = tickets_api.as_tenant(other_tenant)
    b_ticket = new_ticket(b, subject="Secret merger paperwork too")

    for query in ({}, {"search": "secret merger"}, {"search": "ceo"}, {"status": "resolved"}):
        reply = b.get(BASE, query=query)
        assert reply.status == 200
        assert {t["userId"] for t in reply.data} <= {str(other_tenant)}
    assert [t["id"] for t in b.get(BASE, query={"search": "merger"}).data] == [b_ticket["id"]]
    from functions.agents import app as agents_app

    b_agents = HandlerClient(agents_app.lambda_handler, tenant=other_tenant)
    assert [a["id"] for a in b_agents.get("/api/support/agents").data] == []


# --- row-level security in the database itself, on rows of its own in every tenant table -------------------


def _tenant_rows(db: DatabaseUrls, tenant: UUID) -> dict[str, str]:
    """Rows of `tenant` in every tenant table: through the API wherever one writes the table, the daily
    analytics as the owner (no API writes them), the running totals by their triggers."""
    from functions.canned_responses import app as canned_app
    from functions.chat import app as chat_app
    from functions.tickets import app as tickets_app

    tickets = HandlerClient(tickets_app.lambda_handler, tenant=tenant)
    chats = HandlerClient(chat_app.lambda_handler, tenant=tenant)
    canned = HandlerClient(canned_app.lambda_handler, tenant=tenant)

    from functions.settings import app as settings_app

    # email settings first: the ticket's notices go to the outbox (and the desk's inbound address is its own)
    email = {"inboundAddresses": [f"desk-{tenant.hex}@shop.example"], "fromAddress": "desk@shop.example"}
    emailed = HandlerClient(settings_app.lambda_handler, tenant=tenant).put("/api/support/settings/email", email)
    assert emailed.status == 200, emailed.body
    agent = new_agent(tickets)
    ticket = new_ticket(
        tickets, subject="Secret merger paperwork", customerEmail="ceo@tenant.example", category="legal"
    )
    assert tickets.post(f"{BASE}/{ticket['id']}/assign", {"agentId": agent["id"]}).status == 200
    message = {"senderType": "agent", "senderName": "Grace", "message": "Looking into it"}
    assert tickets.post(f"{BASE}/{ticket['id']}/conversations", message).status == 201
    resolve(tickets, ticket["id"])
    assert tickets.post(f"{BASE}/{ticket['id']}/feedback", {"rating": 5, "agentRating": 4}).status == 201
    unrated = new_ticket(tickets)

    session = chats.post("/api/support/chat/sessions", {"visitorId": "visitor-1", "visitorName": "Ada"})
    assert session.status == 201, session.body
    chat_path = f"/api/support/chat/sessions/{session.data['id']}"
    assert chats.post(f"{chat_path}/transfer", {"toAgentId": agent["id"]}).status == 200
    assert chats.post(f"{chat_path}/messages", {"senderType": "agent", "message": "hello"}).status == 201
    assert chats.post(f"{chat_path}/end").status == 200

    response = canned.post(
        "/api/support/canned-responses",
        {"responseTitle": "Refunds", "responseContent": "5 to 7 days.", "shortcutKey": f"r{uuid4().hex[:8]}"},
    )
    assert response.status == 201, response.body

    from functions.widgets import app as widgets_app

    widget = HandlerClient(widgets_app.lambda_handler, tenant=tenant).post(
        "/api/support/widgets", {"name": "Shop", "allowedOrigins": ["https://shop.example"]}
    )
    assert widget.status == 201, widget.body
    # a visitor of the key connects (the authorizer spends its connect token)
    from support import ws_auth
    from support.visitors import issue_connect_token

    connect_token, _ = issue_connect_token(tenant, widget.data["widgetKey"], "visitor-1")
    policy = ws_auth.authorize(
        {
            "queryStringParameters": {"visitorToken": connect_token},
            "headers": {"Origin": "https://shop.example"},
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api/dev/$connect",
        }
    )
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    # a visitor through it (the session route's rate limit counters), and the tenant's chat settings
    assert visitor_session({"widgetKey": widget.data["widgetKey"]}).status == 201

    settings = HandlerClient(settings_app.lambda_handler, tenant=tenant).put("/api/support/settings/chat", {})
    assert settings.status == 200, settings.body

    with psycopg.connect(db.owner) as owner:  # the owner is subject to FORCE RLS too: the tenant is set
        owner.execute(SET_TENANT, (str(tenant),))
        owner.execute(
            "INSERT INTO support_analytics (user_id, analytics_date, total_tickets_created) VALUES (%s, %s, 2)",
            (tenant, date(2026, 1, 1)),
        )
        owner.execute(
            "INSERT INTO support_analytics_cumulative (user_id, analytics_date, days, total_tickets_created)"
            " VALUES (%s, %s, 1, 2)",
            (tenant, date(2026, 1, 1)),
        )
    connection = f"conn-{uuid4().hex[:12]}"
    with psycopg.connect(db.app) as app_conn:  # a staff connection that joined the session, as $connect will
        app_conn.execute(SET_TENANT, (str(tenant),))
        app_conn.execute(
            "INSERT INTO ws_connections (connection_id, user_id, role, agent_id) VALUES (%s, %s, 'agent', %s)",
            (connection, tenant, agent["id"]),
        )
        app_conn.execute(
            "INSERT INTO session_watchers (connection_id, session_id, user_id) VALUES (%s, %s, %s)",
            (connection, session.data["id"], tenant),
        )
        # a pending staff broadcast and a told queue position, as a change and a broadcast run leave them
        app_conn.execute(
            "INSERT INTO broadcast_requests (user_id, queue) VALUES (%s, true) ON CONFLICT (user_id) DO NOTHING",
            (tenant,),
        )
        app_conn.execute(
            "INSERT INTO queue_positions_told (user_id, session_id, position) VALUES (%s, %s, 1)"
            " ON CONFLICT (user_id, session_id) DO NOTHING",
            (tenant, session.data["id"]),
        )
        # an address a bounce suppressed, as the email outbox function records it
        app_conn.execute(
            "INSERT INTO email_suppressions (user_id, address, reason) VALUES (%s, 'gone@example.com', 'bounce')",
            (tenant,),
        )
        # an inbound mail the email function rejected, as it records one (sql/0028)
        app_conn.execute(
            "INSERT INTO inbound_emails (user_id, message_id, ses_message_id, s3_key, recipient, size_bytes, outcome,"
            " reason) VALUES (%s, 'big@customer.example', 'ses-big', 'inbound/ses-big', %s, 99, 'rejected', 'x')",
            (tenant, f"desk-{tenant.hex}@shop.example"),
        )
    # a social channel and a message it delivered (its secret, the signature seen, the message's row)
    from functions.channels import app as channels_app
    from tests.integration.test_channels_api import message, post_message

    channel = HandlerClient(channels_app.lambda_handler, tenant=tenant).post(
        "/api/support/channels", {"name": "WhatsApp", "kind": "whatsapp"}
    )
    assert channel.status == 201, channel.body
    delivered = post_message(channel.data["id"], channel.data["secret"], message())
    assert delivered.status == 200, delivered.body
    # an SLA breach of the open ticket, as the sweep records it (the ticket's queue row is its trigger's)
    with psycopg.connect(db.admin) as admin:
        admin.execute(
            "INSERT INTO ticket_sla_events (user_id, ticket_id, target, kind, due_at, occurred_at)"
            " VALUES (%s, %s, 'first_response', 'breached', now(), now())",
            (tenant, unrated["id"]),
        )
    # an automation rule that ran on a new ticket (its event and its run), and one event left pending
    from functions.automations import app as automations_app

    rule = HandlerClient(automations_app.lambda_handler, tenant=tenant).post(
        "/api/support/automations",
        {"name": "note", "event": "ticket_created", "actions": [{"type": "add_internal_note", "value": "seen"}]},
    )
    assert rule.status == 201, rule.body
    new_ticket(tickets, subject="Run a rule")
    # a webhook endpoint (its secret) and the delivery a new ticket wrote for it (sql/0042)
    from functions.webhooks import app as webhooks_app

    hook = HandlerClient(webhooks_app.lambda_handler, tenant=tenant).post(
        "/api/support/webhooks", {"url": "https://93.184.216.34/hook", "events": ["ticket.created"]}
    )
    assert hook.status == 201, hook.body
    new_ticket(tickets, subject="Tell the CRM")
    # a create retried with an Idempotency-Key (the key's row, with the first answer)
    body = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Retried"}
    for _ in range(2):
        retried = tickets.post(BASE, body, headers={"Idempotency-Key": "same-key-in-every-tenant"})
        assert retried.status == 201, retried.body
    # a privacy request (an erasure of a customer the desk does not know: it finds nothing, and is done)
    from functions.privacy import app as privacy_app

    erasure = HandlerClient(privacy_app.lambda_handler, tenant=tenant).post(
        "/api/support/privacy/erasures", {"customerEmail": "nobody-known@example.com"}
    )
    assert erasure.status == 202, erasure.body
    # the tombstones the retention job leaves (written as the owner: no runtime role may)
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            """INSERT INTO retention_ticket_tombstones (user_id, id, status, priority, channel, created_at)
            VALUES (%s, gen_random_uuid(), 'closed', 'low', 'email', now())""",
            (tenant,),
        )
        conn.execute(
            "INSERT INTO retention_chat_tombstones (user_id, id, status) VALUES (%s, gen_random_uuid(), 'closed')",
            (tenant,),
        )
        # an attachment's pending row, as the upload URL route writes it (the route presigns with S3 first:
        # tests/integration/test_attachments.py runs it against moto)
        conn.execute(
            "INSERT INTO attachments (user_id, ticket_id, file_name, content_type, size_bytes, object_key, uploaded_by)"
            " VALUES (%s, %s, 'a.pdf', 'application/pdf', 10, 'incoming/x', 'staff')",
            (tenant, ticket["id"]),
        )
    # the audit's chains: every entry above sealed (the sweep's step), so each tenant has its chain's head
    with psycopg.connect(db.owner) as owner:
        owner.execute("SELECT audit_seal()")
    return {
        "agent": agent["id"],
        "ticket": ticket["id"],
        "unrated": unrated["id"],
        "session": session.data["id"],
        "channel": channel.data["id"],
    }


@pytest.fixture
def two_tenants(db: DatabaseUrls, tenant: UUID, other_tenant: UUID) -> dict[UUID, dict[str, str]]:
    """Tenant A (`tenant`) and tenant B (`other_tenant`), each with rows of its own in every tenant table."""
    data = {tenant: _tenant_rows(db, tenant), other_tenant: _tenant_rows(db, other_tenant)}
    with psycopg.connect(db.admin) as conn:  # superuser: bypasses RLS
        for table in TENANT_TABLES + SIDE_TABLES:
            counts = dict(
                conn.execute(
                    f"SELECT user_id, count(*) FROM {table} WHERE user_id = ANY(%s) GROUP BY user_id".encode(),
                    ([tenant, other_tenant],),
                ).fetchall()
            )
            assert counts.keys() == {tenant, other_tenant}, f"{table} lacks rows of one tenant: {counts}"
    return data


def _admin_counts(db: DatabaseUrls, tenant: UUID) -> dict[str, dict[UUID, int]]:
    with psycopg.connect(db.admin) as conn:
        return {
            table: dict(
                conn.execute(
                    f"SELECT user_id, count(*) FROM {table} WHERE user_id = %s GROUP BY user_id".encode(), (tenant,)
                ).fetchall()
            )
            for table in TENANT_TABLES
        }


def _as_runtime_role(db: DatabaseUrls, tenant: UUID | None, statement: str, params: Any = ()) -> Any:
    """One statement as support_app, in a transaction of its own (rolled back), with `tenant` set if given."""
    with psycopg.connect(db.app, autocommit=True) as conn, conn.transaction(force_rollback=True):
        if tenant is not None:
            conn.execute(SET_TENANT, (str(tenant),))
        cur = conn.execute(statement.encode(), params)
        return cur.fetchall() if cur.description else cur.rowcount


def _outcome(call: Any) -> str:
    try:
        return f"ok: {call()}"
    except psycopg.Error as exc:
        return type(exc).__name__


def test_the_tenant_tables_are_every_table_with_a_user_id_column(db: DatabaseUrls) -> None:
    with psycopg.connect(db.owner) as conn:
        found = {
            row[0]
            for row in conn.execute(
                """SELECT c.relname FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'"""
            ).fetchall()
        }
    assert found == set(TENANT_TABLES) | set(SIDE_TABLES) | set(PROGRESS_TABLES)


def test_each_tenant_sees_exactly_its_own_rows_in_every_table(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID, two_tenants: dict[UUID, dict[str, str]]
) -> None:
    # Given A and B with rows in every tenant table
    for me in (tenant, other_tenant):
        # When the runtime role reads each whole table (no WHERE: the application's filter is out of the way)
        seen = {
            table: dict(_as_runtime_role(db, me, f"SELECT user_id, count(*) FROM {table} GROUP BY user_id"))
            for table in TENANT_TABLES
        }
        # Then it sees all of its own rows and none of the other tenant's, in every table
        assert seen == _admin_counts(db, me)
        assert all(counts.get(me, 0) >= 1 for counts in seen.values())  # not vacuous: its rows are there


def test_another_tenants_rows_cannot_be_changed_or_deleted(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID, two_tenants: dict[UUID, dict[str, str]]
) -> None:
    # Given A's rows in every table; When B updates (a column it may update) or deletes them by tenant id;
    # Then no row is touched
    columns = {table: _updatable_column(db, table) for table in TENANT_TABLES}
    updates = {
        table: _as_runtime_role(
            db, other_tenant, f"UPDATE {table} SET {column} = {column} WHERE user_id = %s", (tenant,)
        )
        for table, column in columns.items()
        if column is not None
    }
    assert updates == dict.fromkeys(updates, 0)
    assert len(updates) >= 6  # the role may update somewhere, so this was tried
    deletable = [t for t in TENANT_TABLES if _privilege(db, t, "DELETE")]
    deletes = {
        t: _as_runtime_role(db, other_tenant, f"DELETE FROM {t} WHERE user_id = %s", (tenant,)) for t in deletable
    }
    assert deletes == dict.fromkeys(deletable, 0)
    assert deletable  # the role may delete somewhere, so this was tried


def _privilege(db: DatabaseUrls, table: str, privilege: str) -> bool:
    """Whether the runtime role has `privilege` on the table or on any of its columns (grants are per column)."""
    check = (
        "has_any_column_privilege"
        if privilege in ("SELECT", "INSERT", "UPDATE", "REFERENCES")
        else "has_table_privilege"
    )
    with psycopg.connect(db.owner) as conn:
        row = conn.execute(f"SELECT {check}('support_app', %s, %s)".encode(), (table, privilege)).fetchone()
    return bool(row and row[0])


def _updatable_column(db: DatabaseUrls, table: str) -> str | None:
    with psycopg.connect(db.owner) as conn:
        row = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
            " AND has_column_privilege('support_app', attrelid, attnum, 'UPDATE') ORDER BY attnum LIMIT 1",
            (table,),
        ).fetchone()
    return str(row[0]) if row else None


def test_without_a_tenant_setting_every_table_fails_closed(
    db: DatabaseUrls, two_tenants: dict[UUID, dict[str, str]]
) -> None:
    # Given rows in every table; When the runtime role reads one without setting a tenant; Then it raises
    outcomes = {t: _outcome(lambda t=t: _as_runtime_role(db, None, f"SELECT * FROM {t}")) for t in TENANT_TABLES}
    assert outcomes == dict.fromkeys(TENANT_TABLES, "UndefinedObject")


def test_after_a_tenant_transaction_every_table_fails_closed(
    db: DatabaseUrls, tenant: UUID, two_tenants: dict[UUID, dict[str, str]]
) -> None:
    def read_after_a_transaction(table: str) -> Any:
        with psycopg.connect(db.app, autocommit=True) as conn:
            with conn.transaction():
                conn.execute(SET_TENANT, (str(tenant),))
            return conn.execute(f"SELECT * FROM {table}".encode()).fetchall()

    # Given a connection whose tenant transaction has ended; When it reads any table; Then it raises
    outcomes = {t: _outcome(lambda t=t: read_after_a_transaction(t)) for t in TENANT_TABLES}
    assert outcomes == dict.fromkeys(TENANT_TABLES, "InvalidTextRepresentation")


def _inserts_for(tenant: UUID, rows: dict[str, str]) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """A valid row of `tenant` for each tenant table (referring to its own ticket, session)."""
    return {
        "support_tickets": (
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)"
            " VALUES (%s, 'x', 'x@example.com', 'x')",
            (tenant,),
        ),
        "ticket_conversations": (
            "INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, message)"
            " VALUES (%s, %s, 'customer', 'x', 'x')",
            (rows["ticket"], tenant),
        ),
        "support_agents": (
            "INSERT INTO support_agents (user_id, agent_name, agent_email) VALUES (%s, 'x', %s)",
            (tenant, f"{uuid4()}@desk.example"),
        ),
        "live_chat_sessions": ("INSERT INTO live_chat_sessions (user_id, visitor_id) VALUES (%s, 'x')", (tenant,)),
        "chat_messages": (
            "INSERT INTO chat_messages (session_id, user_id, sender_type, message) VALUES (%s, %s, 'customer', 'x')",
            (rows["session"], tenant),
        ),
        "canned_responses": (
            "INSERT INTO canned_responses (user_id, response_title, response_content, shortcut_key)"
            " VALUES (%s, 'x', 'x', %s)",
            (tenant, f"x{uuid4().hex[:8]}"),
        ),
        "support_analytics": (
            "INSERT INTO support_analytics (user_id, analytics_date) VALUES (%s, %s)",
            (tenant, date(2001, 1, 1)),
        ),
        "ticket_feedback": (
            "INSERT INTO ticket_feedback (ticket_id, user_id, rating) VALUES (%s, %s, 3)",
            (rows["unrated"], tenant),
        ),
        "ticket_totals": (
            "INSERT INTO ticket_totals (user_id, status, priority, category) VALUES (%s, 'open', 'low', 'x')",
            (tenant,),
        ),
        "chat_totals": ("INSERT INTO chat_totals (user_id, status) VALUES (%s, 'transferred')", (tenant,)),
        "feedback_totals": (  # the tenant's row exists (its feedback): an upsert, as the trigger's
            "INSERT INTO feedback_totals AS f (user_id) VALUES (%s)"
            " ON CONFLICT (user_id) DO UPDATE SET ratings = f.ratings",
            (tenant,),
        ),
        "widget_keys": (
            "INSERT INTO widget_keys (user_id, widget_key, name, allowed_origins) VALUES (%s, %s, 'x', %s)",
            (tenant, f"wk_{uuid4().hex}", ["https://x.example"]),
        ),
        "ws_connections": (
            "INSERT INTO ws_connections (connection_id, user_id, role) VALUES (%s, %s, 'admin')",
            (f"conn-{uuid4().hex[:12]}", tenant),
        ),
        "session_watchers": (  # a new connection of the tenant's, joining its session
            "WITH c AS (INSERT INTO ws_connections (connection_id, user_id, role) VALUES (%s, %s, 'admin')"
            " RETURNING connection_id, user_id)"
            " INSERT INTO session_watchers (connection_id, session_id, user_id)"
            " SELECT connection_id, %s, user_id FROM c",
            (f"conn-{uuid4().hex[:12]}", tenant, rows["session"]),
        ),
        "visitor_connect_tokens": (
            "INSERT INTO visitor_connect_tokens (token_id, user_id, expires_at) VALUES (%s, %s, now())",
            (uuid4(), tenant),
        ),
        "tenant_settings": (
            "INSERT INTO tenant_settings (user_id, area, settings) VALUES (%s, %s, '{}')",
            (tenant, "area_" + uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))),
        ),
        "rate_limit_counters": (
            "INSERT INTO rate_limit_counters (user_id, scope, subject, tokens, admitted, refilled_at)"
            " VALUES (%s, 'session-ip', %s, 1, true, now())",
            (tenant, f"203.0.113.{uuid4().int % 250}-{uuid4().hex[:6]}"),
        ),
        "broadcast_requests": (  # the tenant's row exists: an upsert, as a change's
            "INSERT INTO broadcast_requests AS r (user_id, queue) VALUES (%s, true)"
            " ON CONFLICT (user_id) DO UPDATE SET queue = r.queue OR excluded.queue",
            (tenant,),
        ),
        "queue_positions_told": (
            "INSERT INTO queue_positions_told (user_id, session_id, position) VALUES (%s, %s, 2)",
            (tenant, uuid4()),
        ),
        "support_contacts": ("INSERT INTO support_contacts (user_id, name) VALUES (%s, 'x')", (tenant,)),
        "contact_identities": (
            "WITH c AS (INSERT INTO support_contacts (user_id, name) VALUES (%s, 'x') RETURNING user_id, id)"
            " INSERT INTO contact_identities (user_id, kind, value, contact_id) SELECT user_id, 'email', %s, id FROM c",
            (tenant, f"{uuid4().hex}@customer.example"),
        ),
        "email_inbound_addresses": (
            "INSERT INTO email_inbound_addresses (user_id, address) VALUES (%s, %s)",
            (tenant, f"desk-{uuid4().hex[:12]}@shop.example"),
        ),
        "email_outbox": (
            "INSERT INTO email_outbox (id, user_id, ticket_id, kind, notice_key, recipient, message_id)"
            " VALUES (%s, %s, %s, 'received', %s, 'x@example.com', '<x@shop.example>')",
            (uuid4(), tenant, rows["ticket"], uuid4().hex),
        ),
        "email_suppressions": (
            "INSERT INTO email_suppressions (user_id, address, reason) VALUES (%s, %s, 'bounce')",
            (tenant, f"gone-{uuid4().hex[:12]}@example.com"),
        ),
        "inbound_emails": (
            "INSERT INTO inbound_emails (user_id, message_id, ses_message_id, s3_key, recipient, size_bytes, outcome,"
            " reason) VALUES (%s, %s, 'ses-1', 'inbound/ses-1', 'desk@shop.example', 10, 'rejected', 'x')",
            (tenant, f"{uuid4().hex}@customer.example"),
        ),
        "support_channels": ("INSERT INTO support_channels (user_id, name, kind) VALUES (%s, 'x', 'other')", (tenant,)),
        "channel_messages": (
            "INSERT INTO channel_messages (user_id, channel_id, external_message_id) VALUES (%s, %s, %s)",
            (tenant, rows["channel"], uuid4().hex),
        ),
        "automation_rules": (
            "INSERT INTO automation_rules (user_id, name, event, definition, position) VALUES (%s, 'x', 'x', '{}', 9)",
            (tenant,),
        ),
        "automation_events": (
            "INSERT INTO automation_events (user_id, event, ticket_id) VALUES (%s, 'ticket_created', %s)",
            (tenant, rows["ticket"]),
        ),
        "automation_runs": (
            "INSERT INTO automation_runs (user_id, event_id, rule_name, event, outcome) VALUES (%s, %s, 'x', 'x',"
            " 'applied')",
            (tenant, uuid4()),
        ),
        "webhook_endpoints": (
            "INSERT INTO webhook_endpoints (user_id, url, events) VALUES (%s, 'https://93.184.216.34/x',"
            " '{ticket.created}')",
            (tenant,),
        ),
        "idempotency_keys": (
            "INSERT INTO idempotency_keys (user_id, route, key, request_hash, claim_id, lease_expires_at, expires_at)"
            " VALUES (%s, 'POST /x', %s, sha256('x'), gen_random_uuid(), now(), now())",
            (tenant, uuid4().hex),
        ),
        "privacy_requests": (
            "INSERT INTO privacy_requests (user_id, kind, customer_email) VALUES (%s, 'export', 'x@example.com')",
            (tenant,),
        ),
        "attachments": (
            "INSERT INTO attachments (user_id, ticket_id, file_name, content_type, size_bytes, object_key, uploaded_by)"
            " VALUES (%s, %s, 'a.pdf', 'application/pdf', 10, 'incoming/x', 'staff')",
            (tenant, rows["ticket"]),
        ),
    }


def test_with_check_refuses_rows_for_another_tenant_in_every_table(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID, two_tenants: dict[UUID, dict[str, str]]
) -> None:
    insertable = [t for t in TENANT_TABLES if _privilege(db, t, "INSERT")]
    candidates = _inserts_for(tenant, two_tenants[tenant])
    assert set(insertable) <= set(candidates)  # every table the role may insert into is tried
    inserts = {t: candidates[t] for t in insertable}
    # Given valid rows: as A itself, each insert goes through (so a refusal below is the policy's)
    accepted = {t: _outcome(lambda s=s: _as_runtime_role(db, tenant, *s)) for t, s in inserts.items()}
    assert accepted == dict.fromkeys(inserts, "ok: 1")
    # When B inserts them; Then WITH CHECK refuses every one
    refused = {t: _outcome(lambda s=s: _as_runtime_role(db, other_tenant, *s)) for t, s in inserts.items()}
    assert refused == dict.fromkeys(inserts, "InsufficientPrivilege")
    # and B cannot move its own rows to A either
    moved = {
        t: _outcome(lambda t=t: _as_runtime_role(db, other_tenant, f"UPDATE {t} SET user_id = %s", (tenant,)))
        for t in TENANT_TABLES
        if _privilege(db, t, "UPDATE")
    }
    assert moved == dict.fromkeys(moved, "InsufficientPrivilege")
    assert moved  # (refused twice over: user_id is not a column the role may update, and WITH CHECK)


def test_the_search_side_table_is_closed_to_the_runtime_role(
    db: DatabaseUrls, tenant: UUID, two_tenants: dict[UUID, dict[str, str]]
) -> None:
    # Given A's tickets in the search side table (kept by trigger)
    with psycopg.connect(db.admin) as conn:
        indexed = conn.execute("SELECT count(*) FROM ticket_search_index WHERE user_id = %s", (tenant,)).fetchone()
        rls = conn.execute("SELECT relrowsecurity FROM pg_class WHERE relname = 'ticket_search_index'").fetchone()
    assert indexed is not None and indexed[0] >= 1
    assert rls == (True,)
    # Then the runtime role holds no privilege on it at all, and reading it is refused even with a tenant set
    privileges = {p: _privilege(db, "ticket_search_index", p) for p in ("SELECT", "INSERT", "UPDATE", "DELETE")}
    assert privileges == dict.fromkeys(privileges, False)
    assert _outcome(lambda: _as_runtime_role(db, tenant, "SELECT * FROM ticket_search_index")) == (
        "InsufficientPrivilege"
    )


def test_runtime_role_owns_nothing_and_cannot_bypass_rls(db: DatabaseUrls) -> None:
    with psycopg.connect(db.app) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = current_user"
        ).fetchone()
        rls = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)",
            (TENANT_TABLES,),
        ).fetchall()
    assert role == (False, False, False, False)
    assert owned == (0,)
    assert sorted(rls) == sorted((t, True, t not in NOT_FORCED) for t in TENANT_TABLES)


def test_composite_foreign_keys_refuse_cross_tenant_references(db: DatabaseUrls, tenant: UUID) -> None:
    """Even the owner cannot point tenant A's ticket at tenant B's agent."""
    other = uuid4()
    with psycopg.connect(db.admin) as conn:  # superuser: RLS does not apply, only the constraints do
        agent = conn.execute(
            "INSERT INTO support_agents (user_id, agent_name, agent_email) VALUES (%s, 'b', 'b@x.example') "
            "RETURNING id",
            (other,),
        ).fetchone()
        assert agent is not None
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, assigned_agent_id) "
                "VALUES (%s, 'x', 'x@example.com', 'x', %s)",
                (tenant, agent[0]),
            )
