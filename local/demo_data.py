"""Demo data for `make run`: two tenants, a few agents, tickets in every state, with conversations, and a
few canned responses and live chats; and two weeks of history (see seed_demo_history), rolled up.

Written through the real services (as each tenant's admin), so demo rows obey every rule real ones do.
Idempotent: a tenant that already has tickets (or canned responses) is left alone in that respect.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from ipaddress import IPv4Address
from typing import Any, NamedTuple
from uuid import UUID

import psycopg

from support.auth import Principal, Role
from support.db import tenant_transaction
from support.models.agents import AgentCreate, AgentStatus
from support.models.canned import CannedResponseCreate, CannedResponseQuery
from support.models.chat import ChatMessageCreate, ChatRating, ChatSessionStart, VisitorContext
from support.models.settings import EmailSettings
from support.models.tickets import (
    ConversationCreate,
    FeedbackCreate,
    SenderType,
    TicketCreate,
    TicketQuery,
    TicketUpdate,
)
from support.models.widgets import MAX_ORIGINS_PER_WIDGET, Widget, WidgetCreate, WidgetOriginsUpdate
from support.services import agents, canned_responses, chat, settings, tickets, widgets

DEMO_TENANTS = {
    "Acme Outfitters": UUID("a0000000-0000-4000-8000-00000000000a"),
    "Globex Coffee": UUID("b0000000-0000-4000-8000-00000000000b"),
}

# Grace, the one available agent, takes one chat at a time: with her demo chat she is full, so the third demo
# visitor waits in the queue (as it would in real life: a waiting chat means no available agent has room).
_AGENTS = [
    ("Grace Hopper", "grace", "Tier 1", ["billing", "orders"], "available", 1),
    ("Alan Turing", "alan", "Tier 2", ["technical"], "busy", 5),
    ("Katherine Johnson", "katherine", "Tier 1", ["shipping"], "away", 5),
]
_TICKETS = [
    (
        "Ada Lovelace",
        "ada",
        "Order arrived damaged",
        "The box was crushed and the mug inside broke.",
        "shipping",
        "high",
    ),
    (
        "Charles Babbage",
        "charles",
        "Refund for order 1042",
        "I returned the jacket two weeks ago.",
        "billing",
        "medium",
    ),
    ("Mary Somerville", "mary", "Cannot log in", "Password reset email never arrives.", "technical", "urgent"),
    ("Emmy Noether", "emmy", "Change delivery address", "Moving next week, please update.", "shipping", "low"),
    ("Sofia Kovalevskaya", "sofia", "Discount code rejected", "SPRING10 says expired.", "billing", "medium"),
]


_CANNED_RESPONSES = [
    ("Greeting", "Hi there, thanks for contacting us! How can I help you today?", "hi", "general"),
    ("Refund timeline", "Refunds reach your original payment method within 5 to 7 business days.", "refund", "billing"),
    ("Tracking link", "You can follow your parcel with the tracking link in your shipping email.", "track", "shipping"),
    ("Password reset", "Use 'Forgot password' on the sign-in page; the email takes a few minutes.", "pw-reset", None),
]


def _seed_canned_responses(admin: Principal) -> None:
    if canned_responses.list_canned_responses(admin, CannedResponseQuery(limit=1)).data:
        return
    for title, content, shortcut, category in _CANNED_RESPONSES:
        canned_responses.create_canned_response(
            admin,
            CannedResponseCreate(
                response_title=title, response_content=content, shortcut_key=shortcut, category=category
            ),
        )


# In this order: the ended chat first frees Grace again, the active one fills her, the last one waits.
_CHATS = [
    ("visitor-1002", "Sam", "Do you ship to Canada?", "end"),
    ("visitor-1001", "Lin", "Hi, where is my order #1042?", "active"),
    ("visitor-1003", "Noor", "Hello?", "wait"),
]


def _seed_chats(admin: Principal) -> None:
    """Three chats: one ended and rated, one with an agent, one waiting in the queue."""
    if chat.list_chat_sessions(admin, limit=1).data:
        return
    available = agents.list_agents(admin, limit=1, status=AgentStatus.AVAILABLE).data
    for visitor_id, name, first_message, outcome in _CHATS:
        session = chat.start_chat_session(
            admin,
            ChatSessionStart(visitor_id=visitor_id, visitor_name=name),
            VisitorContext(ip=IPv4Address("203.0.113.7"), browser="Mozilla/5.0 (demo)"),
        )
        # The visitor's own words and rating, as the WebSocket's sendMessage and rateChat store them: staff
        # post only as agents and never rate a chat.
        visitor = Principal(
            tenant_id=admin.tenant_id,
            role=Role.VISITOR,
            subject=f"visitor:{visitor_id}",
            visitor_id=visitor_id,
            widget_key="wk_demo",
        )
        chat.add_chat_message(
            visitor,
            session.id,
            ChatMessageCreate(sender_type=SenderType.CUSTOMER, sender_name=name, message=first_message),
        )
        if outcome == "wait" or not available:
            continue
        if session.assigned_agent_id is None:  # automatic assignment is off (CHAT_AUTO_ASSIGN=false)
            chat.transfer_chat_session(admin, session.id, available[0].id)
        chat.add_chat_message(
            admin,
            session.id,
            ChatMessageCreate(
                sender_type=SenderType.AGENT, sender_name=available[0].agent_name, message=f"Hi {name}, let me check."
            ),
        )
        if outcome == "end":
            chat.end_chat_session(admin, session.id)
            chat.rate_chat_session(visitor, session.id, ChatRating(rating=5, feedback="Quick answer, thanks"))


# The demo shop's page (the chat widget's demo, and `python -m local.chat visitor`) is served from this origin:
# make run's MERCHANT_PORT, whose origins follow_demo_shop_port gives the demo key on every start.
def demo_shop_origins(port: int) -> list[str]:
    return [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]


DEMO_SHOP_ORIGINS = demo_shop_origins(3002)  # make run's default MERCHANT_PORT (PORT + 2)


def _seed_widget(admin: Principal) -> None:
    if widgets.list_widgets(admin, limit=1).data:
        return
    widgets.create_widget(admin, WidgetCreate(name="Demo shop", allowed_origins=DEMO_SHOP_ORIGINS))


class DemoChat(NamedTuple):
    widget_key: str | None
    allowed_origins: list[str]
    agent: UUID | None


def _demo_widget(admin: Principal) -> Widget | None:
    """The tenant's oldest live widget key (the demo one, unless an admin revoked it)."""
    live = [w for w in widgets.list_widgets(admin, limit=100).data if w.revoked_at is None]
    return live[-1] if live else None


def demo_chat_identities(tenant_id: UUID) -> DemoChat:
    """For make run's welcome, on every run: the demo widget key, and the agent the terminal client signs in as.
    That is Alan, whatever his status now (the client makes him available, and so, once, he stays): he is busy
    with room in the demo data, so he takes the waiting demo chat and the terminal visitor's. Without him (an
    admin renamed or removed him), another agent with room."""
    admin = Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="demo-welcome")
    widget = _demo_widget(admin)
    staff = agents.list_agents(admin, limit=100).data
    alan = [a for a in staff if a.agent_name == "Alan Turing"]
    roomy = [a for a in staff if a.current_chats < a.max_concurrent_chats]
    chosen = alan or roomy
    return DemoChat(
        widget_key=widget.widget_key if widget else None,
        allowed_origins=widget.allowed_origins if widget else [],
        agent=chosen[0].id if chosen else None,
    )


def follow_demo_shop_port(tenant_id: UUID, port: int) -> None:
    """Give the demo widget key the demo shop's origins on `port` (make run's MERCHANT_PORT), through the admin's
    PATCH route. The key's other origins stay (another make run may serve its shop on them), the oldest dropped
    should the key reach its 50."""
    admin = Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="demo-seed")
    widget = _demo_widget(admin)
    wanted = demo_shop_origins(port)
    if widget is None or all(origin in widget.allowed_origins for origin in wanted):
        return
    kept = [origin for origin in widget.allowed_origins if origin not in wanted]
    origins = (kept + wanted)[-MAX_ORIGINS_PER_WIDGET:]
    widgets.update_widget_origins(admin, widget.widget_key, WidgetOriginsUpdate(allowed_origins=origins))


def seed_demo_data() -> dict[str, UUID]:
    for tenant_name, tenant_id in DEMO_TENANTS.items():
        admin = Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="demo-seed")
        _seed_desk(admin, tenant_name)
        # Each has its own check, so a desk seeded by an earlier version gets what was added since.
        _seed_canned_responses(admin)
        _seed_chats(admin)
        _seed_widget(admin)
        _seed_email(admin, tenant_name)
    return DEMO_TENANTS


def demo_email_domain(tenant_name: str) -> str:
    return tenant_name.split()[0].lower() + ".example"


def demo_sender_domains() -> list[str]:
    """The demo desks' sender domains, which make run verifies in its local SES (moto)."""
    return [demo_email_domain(name) for name in DEMO_TENANTS]


def _seed_email(admin: Principal, tenant_name: str) -> None:
    """Email settings (after the desk's tickets, so their notices are not all sent at the first start): the desk
    receives at and writes from support@<its domain>. Left alone once the tenant has email settings."""
    with tenant_transaction(admin.tenant_id) as cur:
        cur.execute("SELECT 1 FROM tenant_settings WHERE user_id = %s AND area = 'email'", (admin.tenant_id,))
        if cur.fetchone() is not None:
            return
    address = f"support@{demo_email_domain(tenant_name)}"
    settings.put_email_settings(
        admin,
        EmailSettings(inbound_addresses=[address], from_name=f"{tenant_name} Support", from_address=address),
    )


def _seed_desk(admin: Principal, tenant_name: str) -> None:
    """Agents and tickets in every state, with conversations and feedback."""
    if tickets.list_tickets(admin, TicketQuery(limit=1)).data:
        return
    domain = demo_email_domain(tenant_name)
    staff = [
        agents.create_agent(
            admin,
            AgentCreate(
                agent_name=name,
                agent_email=f"{handle}@{domain}",
                department=department,
                skills=skills,
                status=status,
                max_concurrent_chats=capacity,
            ),
        )
        for name, handle, department, skills, status, capacity in _AGENTS
    ]
    for i, (customer, handle, subject, description, category, priority) in enumerate(_TICKETS):
        ticket = tickets.create_ticket(
            admin,
            TicketCreate(
                customer_name=customer,
                customer_email=f"{handle}@customers.example",
                subject=subject,
                description=description,
                category=category,
                priority=priority,
            ),
        )
        _customer_wrote(admin, ticket.id, customer, description)
        if i % 4 == 3:
            continue  # left open and unanswered
        agent = staff[i % len(staff)]
        tickets.assign_ticket(admin, ticket.id, agent.id)
        tickets.add_conversation(
            admin,
            ticket.id,
            ConversationCreate(
                sender_type="agent",
                sender_name=agent.agent_name,
                message=f"Hi {customer.split()[0]}, thanks for reaching out. I'm looking into it now.",
            ),
        )
        if i % 2 == 0:
            tickets.update_ticket(admin, ticket.id, TicketUpdate(status="resolved"))
            tickets.add_feedback(admin, ticket.id, FeedbackCreate(rating=5 - i % 3, agent_rating=5))


def _customer_wrote(admin: Principal, ticket_id: UUID, customer: str, text: str) -> None:
    """The customer's first message on a ticket, as a channel would bring it in (the API takes only agents'
    messages: staff post as `agent`), written by hand under the tenant's row-level security."""
    with tenant_transaction(admin.tenant_id) as cur:
        cur.execute(
            "INSERT INTO ticket_conversations (user_id, ticket_id, sender_type, sender_name, message)"
            " VALUES (%s, %s, 'customer', %s, %s)",
            (admin.tenant_id, ticket_id, customer, text),
        )


# --- two weeks of history -------------------------------------------------------------------------------------
# The rows above are created at start-up, through the services, so on their own every average is 0 and the
# week's trends are flat. The history gives each desk two weeks of tickets (created over the past 14 days, first
# answered minutes to hours later, resolved hours to days later, rated 1 to 5) and Globex two weeks of ended chats
# with their messages, durations and ratings. It is written as the schema owner with chosen timestamps (the API
# cannot backdate a row); the database's triggers keep every running total and agent figure true as it goes in,
# as they do for the services' rows. Acme keeps exactly its three demo chats (the tests and the chat walkthrough
# count on them): its ended one is moved to yesterday, with a real duration.
HISTORY_DAYS = 14
HISTORY_TICKETS = 35  # with the 5 above, Acme's tickets still fit on one page of the list (50)
HISTORY_CHATS = 24  # Globex only
_HISTORY_MARK = '{"demoHistory": true}'
_HISTORY_SUBJECTS = [
    ("Where is my parcel?", "The tracking page has not changed for four days.", "shipping"),
    ("Charged twice", "My card shows two payments for the same order.", "billing"),
    ("Wrong size delivered", "I ordered a medium and got a large.", "orders"),
    ("Cannot update my email", "The settings page says 'something went wrong'.", "technical"),
    ("Invoice for my company", "Could you send an invoice with our VAT number?", "billing"),
    ("Return label missing", "The return email had no label attached.", "shipping"),
    ("App crashes at checkout", "It closes as soon as I tap 'Pay'.", "technical"),
    ("Cancel my order", "I ordered by mistake, please cancel before it ships.", "orders"),
    ("Gift card balance", "How much is left on my gift card?", None),
    ("Delivery to a pickup point", "Can I collect the parcel at a pickup point instead?", "shipping"),
]
_HISTORY_CUSTOMERS = [
    "Grace Brewster",
    "Hedy Lamarr",
    "Radia Perlman",
    "Barbara Liskov",
    "Frances Allen",
    "Margaret Hamilton",
    "Annie Easley",
    "Jean Bartik",
    "Evelyn Boyd",
    "Dorothy Vaughan",
    "Lise Meitner",
    "Rosalind Franklin",
]
_RATINGS = [5, 5, 5, 4, 4, 4, 3, 3, 2, 1]


def _history_seeded(conn: psycopg.Connection[Any], tenant: UUID) -> bool:
    row = conn.execute(
        "SELECT 1 FROM support_tickets WHERE user_id = %s AND custom_fields @> %s::jsonb LIMIT 1",
        (tenant, _HISTORY_MARK),
    ).fetchone()
    return row is not None


def _seed_ticket_history(conn: psycopg.Connection[Any], tenant: UUID, rng: random.Random, now: datetime) -> None:
    staff = [
        (row[0], row[1])
        for row in conn.execute(
            "SELECT id, agent_name FROM support_agents WHERE user_id = %s ORDER BY agent_name", (tenant,)
        ).fetchall()
    ]
    starts = sorted(now - timedelta(seconds=rng.uniform(1800, HISTORY_DAYS * 86400)) for _ in range(HISTORY_TICKETS))
    for created in starts:
        subject, description, category = rng.choice(_HISTORY_SUBJECTS)
        customer = rng.choice(_HISTORY_CUSTOMERS)
        age = (now - created).total_seconds()
        # first answers: minutes to a few hours (median about 25 minutes); most tickets get one
        first = int(60 * rng.lognormvariate(3.2, 1.0)) if staff and rng.random() < 0.9 else None
        if first is not None and first >= age:
            first = None
        # resolutions: hours to days (median about half a day), for the tickets old enough
        resolution = max(first or 0, int(3600 * rng.lognormvariate(2.4, 1.0))) if first is not None else None
        if resolution is not None and (resolution >= age - 600 or rng.random() < 0.15):
            resolution = None
        if resolution is not None:
            status = rng.choice(["resolved", "resolved", "closed"])
        elif first is not None:
            status = rng.choice(["in_progress", "in_progress", "waiting_customer"])
        else:
            status = "open"
        agent = rng.choice(staff) if first is not None else None
        resolved_at = created + timedelta(seconds=resolution) if resolution is not None else None
        row = conn.execute(
            "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, description, category,"
            " priority, status, assigned_agent_id, custom_fields, created_at, updated_at, resolved_at,"
            " first_response_time, resolution_time)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s) RETURNING id",
            (
                tenant,
                customer,
                customer.split()[0].lower() + "@customers.example",
                subject,
                description,
                category,
                rng.choice(["low", "medium", "medium", "high", "urgent"]),
                status,
                agent[0] if agent else None,
                _HISTORY_MARK,
                created,
                resolved_at or created,
                resolved_at,
                first,
                resolution,
            ),
        ).fetchone()
        assert row is not None
        ticket = row[0]
        conn.execute(
            "INSERT INTO ticket_conversations (user_id, ticket_id, sender_type, sender_name, message, created_at,"
            " updated_at) VALUES (%s, %s, 'customer', %s, %s, %s, %s)",
            (tenant, ticket, customer, description, created, created),
        )
        if agent is not None and first is not None:
            answered = created + timedelta(seconds=first)
            conn.execute(
                "INSERT INTO ticket_conversations (user_id, ticket_id, sender_type, sender_name, message, created_at,"
                " updated_at) VALUES (%s, %s, 'agent', %s, %s, %s, %s)",
                (tenant, ticket, agent[1], f"Hi {customer.split()[0]}, thanks for writing. On it.", answered, answered),
            )
        if resolved_at is not None and rng.random() < 0.75:
            given = min(now - timedelta(seconds=60), resolved_at + timedelta(seconds=rng.uniform(300, 72000)))
            conn.execute(
                "INSERT INTO ticket_feedback (user_id, ticket_id, rating, agent_rating, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (tenant, ticket, rng.choice(_RATINGS), rng.choice(_RATINGS), given),
            )


def _seed_chat_history(conn: psycopg.Connection[Any], tenant: UUID, rng: random.Random, now: datetime) -> None:
    staff = [
        (row[0], row[1])
        for row in conn.execute("SELECT id, agent_name FROM support_agents WHERE user_id = %s", (tenant,)).fetchall()
    ]
    if not staff:
        return
    starts = sorted(now - timedelta(seconds=rng.uniform(7200, HISTORY_DAYS * 86400)) for _ in range(HISTORY_CHATS))
    for i, started in enumerate(starts):
        agent_id, agent_name = rng.choice(staff)
        duration = int(60 * rng.lognormvariate(2.0, 0.7))  # minutes: median about 7
        wait = int(rng.uniform(5, 180))  # until the agent's first message
        ended = started + timedelta(seconds=duration)
        customer = rng.choice(_HISTORY_CUSTOMERS)
        row = conn.execute(
            "INSERT INTO live_chat_sessions (user_id, visitor_id, visitor_name, status, assigned_agent_id,"
            " visitor_browser, session_start_time, session_end_time, total_messages, message_count, duration,"
            " rating, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'closed', %s, 'Mozilla/5.0 (demo)', %s, %s, 3, 3, %s, %s, %s, %s) RETURNING id",
            (
                tenant,
                f"visitor-h{i:03d}",
                customer.split()[0],
                agent_id,
                started,
                ended,
                duration,
                rng.choice(_RATINGS) if rng.random() < 0.5 else None,
                started,
                ended,
            ),
        ).fetchone()
        assert row is not None
        for sender, name, text, at in (
            ("customer", customer.split()[0], "Hi, quick question about my order.", started),
            ("agent", agent_name, "Hello! Happy to help, what is the order number?", started + timedelta(seconds=wait)),
            ("customer", customer.split()[0], "Sorted, thank you!", ended),
        ):
            conn.execute(
                "INSERT INTO chat_messages (user_id, session_id, sender_type, sender_name, message, is_read, read_at,"
                " created_at) VALUES (%s, %s, %s, %s, %s, true, %s, %s)",
                (tenant, row[0], sender, name, text, at, at),
            )


def _move_ended_demo_chat(conn: psycopg.Connection[Any], tenant: UUID, now: datetime) -> None:
    """The demo chat that ended at start-up: to yesterday afternoon, 9 minutes long, its messages with it."""
    row = conn.execute(
        "SELECT id, session_start_time FROM live_chat_sessions WHERE user_id = %s AND visitor_id = 'visitor-1002'"
        " AND status = 'closed'",
        (tenant,),
    ).fetchone()
    if row is None:
        return
    started = datetime.combine(now.date() - timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=15)
    shift = started - row[1]
    conn.execute(
        "UPDATE live_chat_sessions SET session_start_time = %s, session_end_time = %s, duration = 540, created_at = %s,"
        " updated_at = %s WHERE user_id = %s AND id = %s",
        (started, started + timedelta(seconds=540), started, started + timedelta(seconds=540), tenant, row[0]),
    )
    conn.execute(
        "UPDATE chat_messages SET created_at = least(%s::timestamptz, created_at + %s),"
        " read_at = least(%s::timestamptz, read_at + %s) WHERE user_id = %s AND session_id = %s",
        (started + timedelta(seconds=540), shift, started + timedelta(seconds=540), shift, tenant, row[0]),
    )


def seed_demo_history(owner_url: str, *, now: datetime | None = None) -> None:
    """Two weeks of history for each demo tenant, once (a tenant that has it is left alone)."""
    moment = now or datetime.now(UTC)
    for index, tenant in enumerate(DEMO_TENANTS.values()):
        rng = random.Random(1000 + index)  # noqa: S311 - demo data, not a secret
        with psycopg.connect(owner_url) as conn, conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
            if _history_seeded(conn, tenant):
                continue
            _seed_ticket_history(conn, tenant, rng, moment)
            if index == 0:
                _move_ended_demo_chat(conn, tenant, moment)
            else:
                _seed_chat_history(conn, tenant, rng, moment)


def link_demo_contacts() -> int:
    """Link the demo history's tickets and chats (written by hand, without contacts) to their contacts, as the
    contacts backfill does for a deployed desk's old rows (the runtime role, DATABASE_URL). Idempotent: a run finds
    nothing left to link. Returns the rows linked."""
    from support.services import contacts

    linked = 0
    for tenant in DEMO_TENANTS.values():
        report = contacts.backfill(tenant_id=tenant)
        if report.failed:
            raise RuntimeError(f"the demo contacts backfill failed: {report.failed}")
        linked += report.tickets + report.sessions
    return linked


def roll_up_demo_history(job_url: str, *, today: date | None = None) -> int:
    """Roll up the demo tenants' past two weeks (to yesterday), as the analytics job's role, so the dashboard's
    trends and GET /api/support/analytics have them. Idempotent (an upsert per day). Returns the days written."""
    from local.database import connected_as
    from support.services import analytics

    last = (today or datetime.now(UTC).date()) - timedelta(days=1)
    first = last - timedelta(days=HISTORY_DAYS - 1)
    written = 0
    with connected_as(job_url):
        for tenant in DEMO_TENANTS.values():
            report = analytics.roll_up(first, last, tenant)
            if report.failed:
                raise RuntimeError(f"the demo rollup failed: {report.failed}")
            written += HISTORY_DAYS
    return written
