"""Demo data for `make run`: two tenants, a few agents, tickets in every state, with conversations, and a
few canned responses.

Written through the real services (as each tenant's admin), so demo rows obey every rule real ones do.
Idempotent: a tenant that already has tickets (or canned responses) is left alone in that respect.
"""

from __future__ import annotations

from uuid import UUID

from support.auth import Principal, Role
from support.models.agents import AgentCreate
from support.models.canned import CannedResponseCreate, CannedResponseQuery
from support.models.tickets import ConversationCreate, FeedbackCreate, TicketCreate, TicketQuery, TicketUpdate
from support.services import agents, canned_responses, tickets

DEMO_TENANTS = {
    "Acme Outfitters": UUID("a0000000-0000-4000-8000-00000000000a"),
    "Globex Coffee": UUID("b0000000-0000-4000-8000-00000000000b"),
}

_AGENTS = [
    ("Grace Hopper", "grace", "Tier 1", ["billing", "orders"], "available"),
    ("Alan Turing", "alan", "Tier 2", ["technical"], "busy"),
    ("Katherine Johnson", "katherine", "Tier 1", ["shipping"], "away"),
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


def seed_demo_data() -> dict[str, UUID]:
    for tenant_name, tenant_id in DEMO_TENANTS.items():
        admin = Principal(tenant_id=tenant_id, role=Role.ADMIN, subject="demo-seed")
        _seed_canned_responses(admin)  # its own check, so a desk seeded before canned responses gets them
        if tickets.list_tickets(admin, TicketQuery(limit=1)).data:
            continue
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
                ),
            )
            for name, handle, department, skills, status in _AGENTS
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
    return DEMO_TENANTS
