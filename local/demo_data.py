"""Demo data for `make run`: two tenants, a few agents, tickets in every state, with conversations, and a
few canned responses and live chats.

Written through the real services (as each tenant's admin), so demo rows obey every rule real ones do.
Idempotent: a tenant that already has tickets (or canned responses) is left alone in that respect.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from uuid import UUID

from support.auth import Principal, Role
from support.models.agents import AgentCreate, AgentStatus
from support.models.canned import CannedResponseCreate, CannedResponseQuery
from support.models.chat import ChatMessageCreate, ChatRating, ChatSessionStart, VisitorContext
from support.models.tickets import (
    ConversationCreate,
    FeedbackCreate,
    SenderType,
    TicketCreate,
    TicketQuery,
    TicketUpdate,
)
from support.models.widgets import WidgetCreate
from support.services import agents, canned_responses, chat, tickets, widgets

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
        chat.add_chat_message(
            admin,
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
            chat.rate_chat_session(admin, session.id, ChatRating(rating=5, feedback="Quick answer, thanks"))


# The demo shop's page (the chat widget's demo, and `python -m local.chat visitor`) is served from this origin.
DEMO_SHOP_ORIGINS = ["http://localhost:8080", "http://127.0.0.1:8080"]


def _seed_widget(admin: Principal) -> None:
    if widgets.list_widgets(admin, limit=1).data:
        return
    widgets.create_widget(admin, WidgetCreate(name="Demo shop", allowed_origins=DEMO_SHOP_ORIGINS))


def demo_chat_identities(tenant_id: UUID) -> tuple[str | None, UUID | None]:
    """For make run's welcome: the tenant's oldest live widget key, and a busy agent with room (Alan) whom the
    terminal client makes available, so that he takes the waiting demo chat and the terminal visitor's."""
    admin = Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="demo-welcome")
    keys = [w.widget_key for w in widgets.list_widgets(admin, limit=100).data if w.revoked_at is None]
    busy = agents.list_agents(admin, limit=1, status=AgentStatus.BUSY).data
    return (keys[-1] if keys else None), (busy[0].id if busy else None)


def seed_demo_data() -> dict[str, UUID]:
    for tenant_name, tenant_id in DEMO_TENANTS.items():
        admin = Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="demo-seed")
        _seed_desk(admin, tenant_name)
        # Each has its own check, so a desk seeded by an earlier version gets what was added since.
        _seed_canned_responses(admin)
        _seed_chats(admin)
        _seed_widget(admin)
    return DEMO_TENANTS


def _seed_desk(admin: Principal, tenant_name: str) -> None:
    """Agents and tickets in every state, with conversations and feedback."""
    if tickets.list_tickets(admin, TicketQuery(limit=1)).data:
        return
    domain = tenant_name.split()[0].lower() + ".example"
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
        tickets.add_conversation(
            admin,
            ticket.id,
            ConversationCreate(sender_type="customer", sender_name=customer, message=description),
        )
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
