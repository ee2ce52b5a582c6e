"""Automation rules (issue 18): the admin's rules (strictly validated), the events the triggers write in the change's
own transaction, the runs after the commit (in order, at most once per event and rule, never looping), each action,
the time-based events on a test clock, and tenancy (real handlers, the real PostgreSQL)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.db import tenant_transaction
from support.models.automations import Event
from support.services import automations
from tests.http_events import HandlerClient
from tests.integration.test_chat_concurrency import connection_per_thread, run_together
from tests.management_api import Posts, posts

__all__ = ["connection_per_thread", "posts"]  # the fixtures, used by name below

BASE = "/api/support/automations"
MIGRATION = __import__("pathlib").Path(__file__).parents[2] / "sql" / "0034_automations.sql"


@pytest.fixture
def automations_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.automations import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def admin(tenant: UUID) -> Principal:
    return Principal(tenant_id=tenant, role=Role.ADMIN, subject="test-admin")


def rule(name: str = "VIP first", event: str = "ticket_created", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "event": event,
        "conditions": {"all": [{"field": "category", "operator": "equals", "value": "vip"}]},
        "actions": [{"type": "set_priority", "value": "urgent"}],
    }
    return base | fields


def add_rule(api: HandlerClient, body: dict[str, Any]) -> dict[str, Any]:
    reply = api.post(BASE, body)
    assert reply.status == 201, reply.body
    return dict(reply.data)


def new_ticket(tickets_api: HandlerClient, **fields: Any) -> dict[str, Any]:
    body = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Where is my order?"} | fields
    reply = tickets_api.post("/api/support/tickets", body)
    assert reply.status == 201, reply.body
    return dict(reply.data)


def runs_of(api: HandlerClient, ticket_id: str) -> list[dict[str, Any]]:
    reply = api.get(f"/api/support/tickets/{ticket_id}/automation-runs")
    assert reply.status == 200, reply.body
    return list(reply.data)


def ticket_row(tenant: UUID, ticket_id: str) -> dict[str, Any]:
    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT * FROM support_tickets WHERE user_id = %s AND id = %s", (tenant, ticket_id))
        row = cur.fetchone()
        assert row is not None
        return dict(row)


def entries(tenant: UUID, ticket_id: str) -> list[dict[str, Any]]:
    with tenant_transaction(tenant) as cur:
        cur.execute(
            "SELECT * FROM ticket_conversations WHERE user_id = %s AND ticket_id = %s ORDER BY created_at, id",
            (tenant, ticket_id),
        )
        return [dict(r) for r in cur.fetchall()]


def only_these_rules(api: HandlerClient, *bodies: dict[str, Any]) -> list[dict[str, Any]]:
    """The tenant's rules are exactly these (the defaults removed)."""
    for existing in api.get(BASE).data:
        assert api.delete(f"{BASE}/{existing['id']}").status == 200
    return [add_rule(api, body) for body in bodies]


def pending(tenant: UUID) -> int:
    with tenant_transaction(tenant) as cur:
        cur.execute(
            "SELECT count(*) AS n FROM automation_events WHERE user_id = %s AND processed_at IS NULL", (tenant,)
        )
        row = cur.fetchone()
        return int(row["n"]) if row else 0


# --- the rules ---------------------------------------------------------------------------------------------------


def test_a_new_tenant_has_the_auto_close_rules_it_may_edit(automations_api: HandlerClient) -> None:
    listed = automations_api.get(BASE)
    assert listed.status == 200, listed.body
    assert [
        (r["name"], r["event"], r["parameters"], r["actions"], r["position"], r["enabled"]) for r in listed.data
    ] == [
        (
            "Auto-close resolved tickets",
            "ticket_in_status",
            {"status": "resolved", "hours": 72},
            [{"type": "set_status", "value": "closed"}],
            0,
            True,
        ),
        ("Auto-close idle chats", "chat_idle", {"minutes": 30}, [{"type": "end_chat", "value": None}], 1, True),
    ]
    # editable: five days instead of three
    first = listed.data[0]
    changed = automations_api.patch(f"{BASE}/{first['id']}", {"parameters": {"status": "resolved", "hours": 120}})
    assert changed.status == 200, changed.body
    assert changed.data["parameters"] == {"status": "resolved", "hours": 120}
    # a deleted default does not come back
    assert automations_api.delete(f"{BASE}/{first['id']}").status == 200
    assert [r["name"] for r in automations_api.get(BASE).data] == ["Auto-close idle chats"]


def test_the_migration_gives_existing_tenants_the_same_defaults_as_a_new_tenant_gets(
    db: DatabaseUrls, tenant: UUID
) -> None:
    text = MIGRATION.read_text()
    seeded_by_migration = re.findall(r"\('(Auto-close [^']+)', '(\w+)',\s*'(\{.*?\})',\s*(\d)\)", text)
    with tenant_transaction(tenant) as cur:
        automations.ensure_defaults(cur, tenant)
        cur.execute(
            "SELECT name, event, definition, position FROM automation_rules WHERE user_id = %s ORDER BY position",
            (tenant,),
        )
        given = [(r["name"], r["event"], r["definition"], r["position"]) for r in cur.fetchall()]
    import json

    assert [(n, e, json.loads(d), int(p)) for n, e, d, p in seeded_by_migration] == given


def test_rules_are_created_ordered_edited_disabled_and_deleted(automations_api: HandlerClient) -> None:
    only_these_rules(automations_api)
    a = add_rule(automations_api, rule("A"))
    b = add_rule(automations_api, rule("B"))
    c = add_rule(automations_api, rule("C", position=0))
    assert [r["name"] for r in automations_api.get(BASE).data] == ["C", "A", "B"]
    assert (c["position"], automations_api.get(f"{BASE}/{b['id']}").data["position"]) == (0, 2)
    moved = automations_api.patch(f"{BASE}/{c['id']}", {"position": 2, "enabled": False})
    assert moved.status == 200 and moved.data["enabled"] is False
    assert [(r["name"], r["position"]) for r in automations_api.get(BASE).data] == [("A", 0), ("B", 1), ("C", 2)]
    assert automations_api.delete(f"{BASE}/{a['id']}").data["name"] == "A"
    assert automations_api.get(f"{BASE}/{a['id']}").status == 404
    assert [(r["name"], r["position"]) for r in automations_api.get(BASE).data] == [("B", 0), ("C", 1)]


def test_rules_are_an_admins_and_another_tenants_rule_is_unknown(
    automations_api: HandlerClient, other_tenant: UUID
) -> None:
    mine = add_rule(automations_api, rule())
    agent = automations_api.as_tenant(automations_api.tenant, role="agent")
    assert agent.get(BASE).status == 403
    assert agent.post(BASE, rule()).status == 403
    other = automations_api.as_tenant(other_tenant)
    assert other.get(f"{BASE}/{mine['id']}").status == 404
    assert other.patch(f"{BASE}/{mine['id']}", {"enabled": False}).status == 404
    assert other.delete(f"{BASE}/{mine['id']}").status == 404
    assert mine["id"] not in {r["id"] for r in other.get(BASE).data}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (rule(event="ticket_exploded"), "event"),
        (rule(conditions={"all": [{"field": "mood", "operator": "equals", "value": "x"}]}), "unknown field 'mood'"),
        (rule(conditions={"all": [{"field": "category", "operator": "resembles", "value": "x"}]}), "operator"),
        (rule(actions=[{"type": "launch_rocket", "value": "x"}]), "type"),
        (rule(actions=[{"type": "set_priority", "value": "whenever"}]), "set_priority takes one of"),
        (rule(conditions={"all": [{"field": "priority", "operator": "equals", "value": "meh"}]}), "not a value"),
        (rule(conditions={"all": [{"field": "category", "operator": "in", "value": "vip"}]}), "`in` takes"),
        (rule(conditions={"all": [{"field": "category", "operator": "greater_than", "value": 3}]}), "does not apply"),
        (rule(conditions={"all": [], "any": []}), "not both"),
        (rule(event="chat_started", conditions={"all": []}), "acts on a ticket"),
        (rule(event="ticket_in_status", conditions={"all": []}), "needs the parameters status, hours"),
        (rule(conditions={"all": [{"field": "message", "operator": "contains", "value": "x"}]}), "unknown field"),
        (rule(actions=[{"type": "notify_email", "value": "not-an-address"}]), "email address"),
        (rule(actions=[{"type": "end_chat", "value": None}]), "acts on a chat"),
        (rule(business_hours=None, businessHours={"timeZone": "Mars/Olympus"}), "unknown time zone"),
    ],
)
def test_an_invalid_rule_is_a_422_that_says_why(
    automations_api: HandlerClient, body: dict[str, Any], says: str
) -> None:
    body.pop("business_hours", None)
    reply = automations_api.post(BASE, body)
    assert reply.status == 422, reply.body
    assert says in str(reply.body)


def test_a_patch_is_validated_as_the_whole_rule(automations_api: HandlerClient) -> None:
    created = add_rule(automations_api, rule())
    reply = automations_api.patch(  # set_priority on a chat
        f"{BASE}/{created['id']}", {"event": "chat_started", "conditions": {"all": []}}
    )
    assert reply.status == 422, reply.body
    assert "acts on a ticket" in str(reply.body)
    assert automations_api.get(f"{BASE}/{created['id']}").data["event"] == "ticket_created"


# --- the operators, each and combined ----------------------------------------------------------------------------

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC
TICKET = {
    "status": "open",
    "priority": "high",
    "category": "Billing",
    "channel": "email",
    "subject": "Refund for order #77",
    "description": None,
    "customer_name": "Ada",
    "customer_email": "ada@example.com",
    "assigned_agent_id": None,
    "custom_fields": {"plan": "gold", "seats": 12},
}


def holds(field: str, operator: str, value: Any, data: dict[str, Any] | None = None, at: datetime = NOW) -> bool:
    facts = automations.ticket_facts(TICKET, data or {}, at)
    return automations.matches({"conditions": {"all": [{"field": field, "operator": operator, "value": value}]}}, facts)


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("category", "equals", "billing", True),  # text compares without case
        ("category", "equals", "shipping", False),
        ("category", "not_equals", "shipping", True),
        ("category", "not_equals", "Billing", False),
        ("subject", "contains", "REFUND", True),
        ("subject", "contains", "invoice", False),
        ("channel", "in", ["chat", "email"], True),
        ("channel", "in", ["chat", "phone"], False),
        ("priority", "greater_than", "medium", True),  # priorities by rank: low < medium < high < urgent
        ("priority", "greater_than", "high", False),
        ("priority", "less_than", "urgent", True),
        ("priority", "less_than", "low", False),
        ("customFields.seats", "greater_than", 10, True),
        ("customFields.seats", "less_than", 10, False),
        ("customFields.plan", "equals", "gold", True),
        ("customFields.missing", "equals", "gold", False),
        ("customFields.missing", "greater_than", 1, False),  # nothing to compare: never true
        ("assignedAgentId", "equals", None, True),
    ],
)
def test_each_operator(field: str, operator: str, value: Any, expected: bool) -> None:
    assert holds(field, operator, value) is expected


def test_message_and_business_hours_conditions() -> None:
    assert holds("message", "contains", "refund", {"message": "I want a REFUND now"})
    assert not holds("message", "contains", "refund", {"message": "thanks!"})
    assert holds("businessHours", "equals", "inside")  # Monday 10:00 UTC
    assert holds("businessHours", "equals", "outside", at=NOW + timedelta(days=5))  # Saturday
    assert holds("businessHours", "equals", "outside", at=NOW.replace(hour=18))
    # the rule's own window and time zone: 10:00 UTC is 19:00 in Tokyo, outside 09:00-17:00 there
    facts = automations.ticket_facts(TICKET, {}, NOW)
    facts.window = {"timeZone": "Asia/Tokyo", "days": [1, 2, 3, 4, 5], "start": "09:00:00", "end": "17:00:00"}
    assert facts.get("businessHours") == "outside"


def test_all_and_any_combine_conditions() -> None:
    facts = automations.ticket_facts(TICKET, {}, NOW)
    yes = {"field": "category", "operator": "equals", "value": "billing"}
    no = {"field": "priority", "operator": "equals", "value": "low"}
    assert automations.matches({"conditions": {"all": [yes, yes]}}, facts)
    assert not automations.matches({"conditions": {"all": [yes, no]}}, facts)
    assert automations.matches({"conditions": {"any": [no, yes]}}, facts)
    assert not automations.matches({"conditions": {"any": [no, no]}}, facts)
    assert automations.matches({"conditions": {"all": []}}, facts)  # no conditions: always
    assert not automations.matches({"conditions": {"any": []}}, facts)


# --- events and runs ---------------------------------------------------------------------------------------------


def test_a_rule_acts_after_the_change_and_its_run_is_readable_on_the_ticket(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    vip = add_rule(automations_api, rule())
    ticket = new_ticket(tickets_api, category="vip")
    plain = new_ticket(tickets_api, category="general")
    assert ticket_row(tickets_api.tenant, ticket["id"])["priority"] == "urgent"  # run by the tickets function's kick
    assert ticket_row(tickets_api.tenant, plain["id"])["priority"] == "medium"
    [run] = runs_of(automations_api, ticket["id"])
    assert (run["ruleId"], run["ruleName"], run["event"], run["outcome"], run["error"], run["depth"]) == (
        vip["id"],
        "VIP first",
        "ticket_created",
        "applied",
        None,
        0,
    )
    assert run["actions"] == [{"type": "set_priority", "value": "urgent", "outcome": "applied"}]
    assert runs_of(automations_api, plain["id"]) == []
    assert pending(tickets_api.tenant) == 0
    # another tenant's ticket id is unknown
    assert automations_api.as_tenant(uuid4()).get(f"/api/support/tickets/{ticket['id']}/automation-runs").status == 404


def test_rules_run_in_order_and_each_sees_the_last_ones_change(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    only_these_rules(
        automations_api,
        rule(
            "categorise",
            conditions={"all": [{"field": "subject", "operator": "contains", "value": "refund"}]},
            actions=[{"type": "set_category", "value": "billing"}],
        ),
        rule(
            "billing is high",
            conditions={"all": [{"field": "category", "operator": "equals", "value": "billing"}]},
            actions=[{"type": "set_priority", "value": "high"}],
        ),
    )
    ticket = new_ticket(tickets_api, subject="Refund please")
    row = ticket_row(tickets_api.tenant, ticket["id"])
    assert (row["category"], row["priority"]) == ("billing", "high")
    assert [r["ruleName"] for r in runs_of(automations_api, ticket["id"])] == ["categorise", "billing is high"]


def test_events_are_written_by_every_path_only_for_rules_that_exist(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    only_these_rules(automations_api)
    ticket = new_ticket(tickets_api)
    assert pending(tickets_api.tenant) == 0  # no rule on it: no event
    only_these_rules(
        automations_api,
        rule(
            "status",
            "ticket_status_changed",
            conditions={"all": [{"field": "previousStatus", "operator": "equals", "value": "open"}]},
            actions=[{"type": "add_internal_note", "value": "status changed"}],
        ),
        rule(
            "reply",
            "customer_replied",
            conditions={"all": [{"field": "message", "operator": "contains", "value": "angry"}]},
            actions=[{"type": "set_priority", "value": "urgent"}],
        ),
        rule(
            "answer",
            "agent_replied",
            conditions={"all": []},
            actions=[{"type": "add_internal_note", "value": "answered"}],
        ),
    )
    # a change made straight in SQL by the runtime role (no service at all) is captured too
    with tenant_transaction(tickets_api.tenant) as cur:
        cur.execute(
            "UPDATE support_tickets SET status = 'in_progress' WHERE user_id = %s AND id = %s",
            (tickets_api.tenant, ticket["id"]),
        )
        cur.execute(
            """INSERT INTO ticket_conversations (ticket_id, user_id, sender_type, sender_name, message)
            VALUES (%s, %s, 'customer', 'Ada', 'I am angry')""",
            (ticket["id"], tickets_api.tenant),
        )
    assert pending(tickets_api.tenant) == 2
    automations.run_pending(tickets_api.tenant)
    reply = tickets_api.post(
        f"/api/support/tickets/{ticket['id']}/conversations",
        {"senderType": "agent", "senderName": "Grace", "message": "On it"},
    )
    assert reply.status == 201
    assert ticket_row(tickets_api.tenant, ticket["id"])["priority"] == "urgent"
    notes = [e["message"] for e in entries(tickets_api.tenant, ticket["id"]) if e["sender_type"] == "system"]
    assert notes == ["status changed", "answered"]
    assert sorted(r["ruleName"] for r in runs_of(automations_api, ticket["id"])) == ["answer", "reply", "status"]


# --- the actions -------------------------------------------------------------------------------------------------


def test_status_category_assignment_and_a_note(
    automations_api: HandlerClient, tickets_api: HandlerClient, agents_api: HandlerClient
) -> None:
    agent = agents_api.post("/api/support/agents", {"agentName": "Grace", "agentEmail": f"{uuid4()}@desk.example"})
    assert agent.status == 201
    only_these_rules(
        automations_api,
        rule(
            conditions={"all": []},
            actions=[
                {"type": "set_status", "value": "in_progress"},
                {"type": "set_category", "value": "triage"},
                {"type": "assign_to_agent", "value": agent.data["id"]},
                {"type": "add_internal_note", "value": "Taken by the rules"},
            ],
        ),
    )
    ticket = new_ticket(tickets_api)
    row = ticket_row(tickets_api.tenant, ticket["id"])
    assert (row["status"], row["category"], str(row["assigned_agent_id"])) == (
        "in_progress",
        "triage",
        agent.data["id"],
    )
    [note] = entries(tickets_api.tenant, ticket["id"])
    assert (note["message"], note["is_internal"], note["sender_type"]) == ("Taken by the rules", True, "system")
    [run] = runs_of(automations_api, ticket["id"])
    assert [a["outcome"] for a in run["actions"]] == ["applied"] * 4


def test_a_failing_action_undoes_its_rules_actions_and_is_recorded(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    only_these_rules(
        automations_api,
        rule(
            conditions={"all": []},
            actions=[
                {"type": "set_category", "value": "triage"},
                {"type": "assign_to_agent", "value": str(uuid4())},  # no such agent
            ],
        ),
    )
    ticket = new_ticket(tickets_api)
    assert ticket_row(tickets_api.tenant, ticket["id"])["category"] is None
    [run] = runs_of(automations_api, ticket["id"])
    assert run["outcome"] == "failed" and "agent not found" in run["error"]


def test_a_canned_response_goes_out_through_the_tickets_channel(
    automations_api: HandlerClient, tickets_api: HandlerClient, canned_api: HandlerClient
) -> None:
    from functions.settings import app as settings_app

    settings = HandlerClient(settings_app.lambda_handler, tenant=tickets_api.tenant)
    assert settings.put("/api/support/settings/email", {"fromAddress": "help@shop.example"}).status == 200
    canned = canned_api.post(
        "/api/support/canned-responses",
        {"responseTitle": "Thanks", "responseContent": "Thanks, we are on it.", "shortcutKey": "thanks"},
    )
    assert canned.status == 201, canned.body
    only_these_rules(
        automations_api,
        rule(
            conditions={"all": []},
            actions=[
                {"type": "send_canned_response", "value": "thanks"},
                {"type": "notify_email", "value": "lead@shop.example"},
            ],
        ),
    )
    ticket = new_ticket(tickets_api, channel="email")
    [reply] = [e for e in entries(tickets_api.tenant, ticket["id"]) if e["sender_type"] == "agent"]
    assert (reply["message"], reply["is_internal"]) == ("Thanks, we are on it.", False)
    with tenant_transaction(tickets_api.tenant) as cur:
        cur.execute(
            "SELECT kind, recipient, note FROM email_outbox WHERE user_id = %s AND ticket_id = %s ORDER BY kind",
            (tickets_api.tenant, ticket["id"]),
        )
        mails = cur.fetchall()
    assert [(m["kind"], m["recipient"]) for m in mails] == [
        ("automation", "lead@shop.example"),
        ("received", "ada@example.com"),
        ("replied", "ada@example.com"),
    ]
    assert 'The automation rule "VIP first" ran on ticket' in mails[0]["note"]
    # and the automation's mail is built for the staff address, with its text
    from support.services import email_outbox

    [mail] = [m for m in email_outbox._load(tickets_api.tenant, _claimed(tickets_api.tenant)) if m.kind == "automation"]
    built = email_outbox.build_message(mail)
    assert built["To"] == "lead@shop.example" and "ran on ticket" in built.get_body(("plain",)).get_content()


def _claimed(tenant: UUID) -> list[dict[str, Any]]:
    with tenant_transaction(tenant) as cur:
        cur.execute(
            "UPDATE email_outbox SET state = 'sending' WHERE user_id = %s RETURNING id, user_id, attempts", (tenant,)
        )
        return cur.fetchall()


def test_route_by_skills_routes_through_the_ticket_router(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    # Automatic ticket assignment is off by default: the router leaves the ticket, and the run says so
    only_these_rules(
        automations_api, rule(conditions={"all": []}, actions=[{"type": "route_by_skills", "value": None}])
    )
    ticket = new_ticket(tickets_api)
    [run] = runs_of(automations_api, ticket["id"])
    assert (run["outcome"], run["error"]) == ("skipped", automations.ROUTING_SKIPPED)


def test_staff_are_notified_over_the_websocket(
    automations_api: HandlerClient, tickets_api: HandlerClient, posts: Posts
) -> None:
    from support.services import connections

    [staff] = [f"staff-{uuid4().hex[:10]}"]
    assert connections.open_connection(admin(tickets_api.tenant), staff)
    vip = only_these_rules(automations_api, rule(actions=[{"type": "notify_staff", "value": "A VIP wrote in"}]))[0]
    ticket = new_ticket(tickets_api, category="vip")
    [notice] = posts.of(staff, automations.NOTICE)
    assert notice == {
        "ruleId": vip["id"],
        "ruleName": "VIP first",
        "event": "ticket_created",
        "ticketId": ticket["id"],
        "sessionId": None,
        "message": "A VIP wrote in",
    }


# --- loops and at most once --------------------------------------------------------------------------------------


def test_a_rule_never_fires_on_its_own_change(automations_api: HandlerClient, tickets_api: HandlerClient) -> None:
    only_these_rules(
        automations_api,
        rule(
            "bump",
            "ticket_updated",
            conditions={"all": []},
            actions=[{"type": "add_internal_note", "value": "updated"}],
        ),
    )
    ticket = new_ticket(tickets_api)
    assert tickets_api.patch(f"/api/support/tickets/{ticket['id']}", {"priority": "high"}).status == 200
    # the note is no ticket update; but a rule that updates the ticket on every update would loop without the rule:
    only_these_rules(
        automations_api,
        rule("flip", "ticket_updated", conditions={"all": []}, actions=[{"type": "set_category", "value": "touched"}]),
    )
    assert tickets_api.patch(f"/api/support/tickets/{ticket['id']}", {"priority": "low"}).status == 200
    runs = runs_of(automations_api, ticket["id"])
    assert [(r["ruleName"], r["outcome"], r["depth"]) for r in runs] == [
        ("bump", "applied", 0),
        ("flip", "applied", 0),
        ("flip", "skipped", 1),
    ]
    assert runs[-1]["error"] == "the rule's own change: a rule never fires on it"
    assert pending(tickets_api.tenant) == 0


def test_two_rules_that_feed_each_other_stop_at_the_chains_depth(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    only_these_rules(
        automations_api,
        rule(
            "down",
            "ticket_updated",
            conditions={"all": [{"field": "priority", "operator": "equals", "value": "high"}]},
            actions=[{"type": "set_priority", "value": "low"}],
        ),
        rule(
            "up",
            "ticket_updated",
            conditions={"all": [{"field": "priority", "operator": "equals", "value": "low"}]},
            actions=[{"type": "set_priority", "value": "high"}],
        ),
    )
    ticket = new_ticket(tickets_api)
    assert tickets_api.patch(f"/api/support/tickets/{ticket['id']}", {"priority": "high"}).status == 200
    runs = runs_of(automations_api, ticket["id"])
    # each run sees the last one's change: down and up both act on the person's change, then on each other's, until
    # the chain reaches its depth; the cut is recorded, nothing is left pending, and the priority stays put
    assert [(r["ruleName"], r["outcome"], r["depth"]) for r in runs if r["outcome"] == "applied"] == [
        ("down", "applied", 0),
        ("up", "applied", 0),
        ("down", "applied", 1),
        ("up", "applied", 2),
    ]
    [cut] = [r for r in runs if r["error"] == f"the chain of rules was cut at depth {automations.MAX_DEPTH}"]
    assert (cut["ruleName"], cut["outcome"], cut["depth"]) == ("down", "skipped", 3)
    assert pending(tickets_api.tenant) == 0
    assert automations.run_pending(tickets_api.tenant).events == 0


def test_a_retried_event_never_acts_twice(
    db: DatabaseUrls, automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    only_these_rules(
        automations_api, rule(conditions={"all": []}, actions=[{"type": "add_internal_note", "value": "once"}])
    )
    ticket = new_ticket(tickets_api)
    # a retry that finds the event not marked (a runner that died after its runs committed: as if)
    with psycopg.connect(db.owner) as conn:
        conn.execute("UPDATE automation_events SET processed_at = NULL WHERE user_id = %s", (tickets_api.tenant,))
    assert pending(tickets_api.tenant) == 1
    again = automations.run_pending(tickets_api.tenant)
    assert (again.events, again.runs) == (1, {})
    assert [e["message"] for e in entries(tickets_api.tenant, ticket["id"])] == ["once"]
    assert len(runs_of(automations_api, ticket["id"])) == 1


@pytest.mark.usefixtures("connection_per_thread")
def test_concurrent_runners_run_each_event_and_rule_once(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    only_these_rules(
        automations_api, rule(conditions={"all": []}, actions=[{"type": "add_internal_note", "value": "once"}])
    )
    tenant = tickets_api.tenant
    with tenant_transaction(tenant) as cur:  # 20 tickets written at once, their events left pending
        for n in range(20):
            cur.execute(
                """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)
                VALUES (%s, 'Ada', 'ada@example.com', %s)""",
                (tenant, f"ticket {n}"),
            )
    assert pending(tenant) == 20
    results = run_together([lambda: automations.run_pending(tenant) for _ in range(4)])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.events for r in results) == 20
    with tenant_transaction(tenant) as cur:
        cur.execute(
            "SELECT ticket_id, count(*) AS n FROM ticket_conversations WHERE user_id = %s GROUP BY 1", (tenant,)
        )
        notes = cur.fetchall()
        cur.execute("SELECT count(*) AS n FROM automation_runs WHERE user_id = %s", (tenant,))
        runs = cur.fetchone()
    assert len(notes) == 20 and {n["n"] for n in notes} == {1}
    assert runs is not None and runs["n"] == 20


# --- time-based events -------------------------------------------------------------------------------------------


def test_resolved_tickets_close_after_three_days_on_the_test_clock(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    tenant = tickets_api.tenant
    automations_api.get(BASE)  # the defaults
    ticket = new_ticket(tickets_api)
    assert tickets_api.patch(f"/api/support/tickets/{ticket['id']}", {"status": "resolved"}).status == 200
    since = ticket_row(tenant, ticket["id"])["status_changed_at"]
    report = automations.sweep(since + timedelta(hours=71, minutes=59), tenants=lambda: [tenant])
    assert report.fired == 0 and ticket_row(tenant, ticket["id"])["status"] == "resolved"
    report = automations.sweep(since + timedelta(hours=72, minutes=1), tenants=lambda: [tenant])
    assert report.fired == 1 and ticket_row(tenant, ticket["id"])["status"] == "closed"
    [run] = runs_of(automations_api, ticket["id"])
    assert (run["ruleName"], run["event"], run["outcome"]) == (
        "Auto-close resolved tickets",
        "ticket_in_status",
        "applied",
    )
    # a second sweep fires nothing again
    assert automations.sweep(since + timedelta(hours=80), tenants=lambda: [tenant]).fired == 0


def test_a_ticket_in_status_fires_once_per_stint(automations_api: HandlerClient, tickets_api: HandlerClient) -> None:
    tenant = tickets_api.tenant
    only_these_rules(
        automations_api,
        rule(
            "waiting",
            "ticket_in_status",
            conditions={"all": []},
            parameters={"status": "waiting_customer", "hours": 24},
            actions=[{"type": "add_internal_note", "value": "still waiting"}],
        ),
    )
    ticket = new_ticket(tickets_api)
    tickets_api.patch(f"/api/support/tickets/{ticket['id']}", {"status": "waiting_customer"})
    since = ticket_row(tenant, ticket["id"])["status_changed_at"]
    automations.sweep(since + timedelta(hours=25), tenants=lambda: [tenant])
    automations.sweep(since + timedelta(hours=50), tenants=lambda: [tenant])  # same stint: not again
    assert [e["message"] for e in entries(tenant, ticket["id"])] == ["still waiting"]


def test_an_idle_chat_ends_after_thirty_minutes(automations_api: HandlerClient, db: DatabaseUrls) -> None:
    from functions.chat import app as chat_app

    tenant = automations_api.tenant
    automations_api.get(BASE)  # the defaults
    chat = HandlerClient(chat_app.lambda_handler, tenant=tenant)
    session = chat.post("/api/support/chat/sessions", {"visitorId": f"v-{uuid4()}", "visitorName": "Ada"})
    assert session.status == 201, session.body
    started = datetime.fromisoformat(session.data["updatedAt"])
    automations.sweep(started + timedelta(minutes=29), tenants=lambda: [tenant])
    assert chat.get(f"/api/support/chat/sessions/{session.data['id']}").data["status"] != "closed"
    automations.sweep(started + timedelta(minutes=31), tenants=lambda: [tenant])
    assert chat.get(f"/api/support/chat/sessions/{session.data['id']}").data["status"] == "closed"
    with psycopg.connect(db.admin) as conn:  # the desk ended it (an automation's end_chat), not an admin
        row = conn.execute("SELECT ended_by FROM live_chat_sessions WHERE id = %s", (session.data["id"],)).fetchone()
    assert row == ("system",)


def test_a_waiting_chat_fires_chat_waiting_too_long(automations_api: HandlerClient, posts: Posts) -> None:
    from functions.chat import app as chat_app
    from support.services import connections

    tenant = automations_api.tenant
    only_these_rules(
        automations_api,
        rule(
            "slow",
            "chat_waiting_too_long",
            conditions={"all": []},
            parameters={"minutes": 5},
            actions=[{"type": "notify_staff", "value": "a visitor waits"}],
        ),
    )
    staff = f"staff-{uuid4().hex[:10]}"
    assert connections.open_connection(admin(tenant), staff)
    chat = HandlerClient(chat_app.lambda_handler, tenant=tenant)
    session = chat.post("/api/support/chat/sessions", {"visitorId": f"v-{uuid4()}", "visitorName": "Ada"})
    assert session.data["status"] == "waiting"  # no agent
    start = datetime.fromisoformat(session.data["sessionStartTime"])
    automations.sweep(start + timedelta(minutes=4), tenants=lambda: [tenant])
    assert posts.of(staff, automations.NOTICE) == []
    automations.sweep(start + timedelta(minutes=6), tenants=lambda: [tenant])
    automations.sweep(start + timedelta(minutes=9), tenants=lambda: [tenant])
    assert [n["message"] for n in posts.of(staff, automations.NOTICE)] == ["a visitor waits"]


def test_the_sla_sweep_records_its_events_once(automations_api: HandlerClient, tickets_api: HandlerClient) -> None:
    only_these_rules(
        automations_api,
        rule("escalate", "sla_breached", conditions={"all": []}, actions=[{"type": "set_priority", "value": "urgent"}]),
    )
    ticket = new_ticket(tickets_api)
    for _ in range(2):
        with tenant_transaction(tickets_api.tenant) as cur:
            automations.record_event(
                cur,
                tickets_api.tenant,
                Event.SLA_BREACHED,
                ticket_id=UUID(ticket["id"]),
                dedup_key=f"sla_breached:{ticket['id']}:resolution",
            )
    automations.run_pending(tickets_api.tenant)
    assert ticket_row(tickets_api.tenant, ticket["id"])["priority"] == "urgent"
    assert [r["event"] for r in runs_of(automations_api, ticket["id"])] == ["sla_breached"]


# --- tenancy -----------------------------------------------------------------------------------------------------


def test_another_tenants_rule_never_runs_on_this_tenants_events(
    automations_api: HandlerClient, tickets_api: HandlerClient, other_tenant: UUID
) -> None:
    other = automations_api.as_tenant(other_tenant)
    add_rule(other, rule("theirs", conditions={"all": []}, actions=[{"type": "set_priority", "value": "urgent"}]))
    only_these_rules(automations_api)
    ticket = new_ticket(tickets_api)
    automations.sweep(datetime.now(UTC), tenants=lambda: [other_tenant, tickets_api.tenant])
    assert ticket_row(tickets_api.tenant, ticket["id"])["priority"] == "medium"
    assert runs_of(automations_api, ticket["id"]) == []
    # and the other tenant's own ticket is acted on
    theirs = new_ticket(tickets_api.as_tenant(other_tenant))
    assert ticket_row(other_tenant, theirs["id"])["priority"] == "urgent"


def test_the_automations_function_runs_a_tenants_pending_events(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    from functions.automations import app
    from local.gateway import LambdaContext

    only_these_rules(automations_api, rule(conditions={"all": []}))
    with tenant_transaction(tickets_api.tenant) as cur:
        cur.execute(
            """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)
            VALUES (%s, 'Ada', 'ada@example.com', 'Hi') RETURNING id""",
            (tickets_api.tenant,),
        )
        row = cur.fetchone()
        assert row is not None
    answer = app.lambda_handler({"tenantId": str(tickets_api.tenant)}, LambdaContext("AutomationsFunction", 512, 30))
    assert answer == {"events": 1, "runs": {"applied": 1}}
    assert ticket_row(tickets_api.tenant, str(row["id"]))["priority"] == "urgent"


def test_the_runtime_role_gives_defaults_to_its_own_tenant_only(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID
) -> None:
    with psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT automation_seed_defaults(%s)", (other_tenant,))
    with psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        assert conn.execute("SELECT automation_seed_own_defaults()").fetchone() == (True,)
    with psycopg.connect(db.admin) as conn:
        seeded = conn.execute(
            "SELECT user_id FROM automation_tenants WHERE user_id = ANY(%s)", ([tenant, other_tenant],)
        ).fetchall()
    assert seeded == [(tenant,)]


def test_the_sweep_lists_the_tenants_with_work_and_prunes_old_events(
    automations_api: HandlerClient, tickets_api: HandlerClient, other_tenant: UUID
) -> None:
    tenant = tickets_api.tenant
    only_these_rules(automations_api, rule(conditions={"all": []}))
    with tenant_transaction(tenant) as cur:  # an event left pending (written without the tickets function's kick)
        cur.execute(
            """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)
            VALUES (%s, 'Ada', 'ada@example.com', 'Hi') RETURNING id""",
            (tenant,),
        )
        row = cur.fetchone()
        assert row is not None
    automations_api.as_tenant(other_tenant).get(BASE)  # the other tenant: its defaults, time-based, nothing pending
    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT user_id, pending, timed FROM automation_sweep_work()")
        work = {r["user_id"]: (r["pending"], r["timed"]) for r in cur.fetchall()}
    assert (work[tenant], work[other_tenant]) == ((True, False), (False, True))
    # the whole sweep (every tenant with work) runs the pending event
    report = automations.sweep(datetime.now(UTC).replace(minute=1))
    assert report.tenants >= 2
    assert ticket_row(tenant, str(row["id"]))["priority"] == "urgent"
    # a month later, on the hour, the processed event is pruned; its run stays
    later = (datetime.now(UTC) + automations.KEEP_EVENTS + timedelta(days=1)).replace(minute=0)
    assert automations.sweep(later, tenants=lambda: [tenant]).pruned == 1
    assert len(runs_of(automations_api, str(row["id"]))) == 1


def test_auto_close_is_never_retroactive_and_an_edit_keeps_what_was_considered(
    db: DatabaseUrls, automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    from support.db.connection import SET_TENANT

    tenant = tickets_api.tenant
    old = new_ticket(tickets_api)
    assert tickets_api.patch(f"/api/support/tickets/{old['id']}", {"status": "resolved"}).status == 200
    with psycopg.connect(db.owner) as conn:  # resolved ten days ago, before the rule (the desk's defaults) existed
        conn.execute(SET_TENANT, (str(tenant),))
        conn.execute(
            "UPDATE support_tickets SET status_changed_at = now() - interval '10 days' WHERE id = %s", (old["id"],)
        )
    automations.sweep(datetime.now(UTC), tenants=lambda: [tenant])
    assert ticket_row(tenant, old["id"])["status"] == "resolved"  # overdue before the rule existed: left as it is
    [close, _] = automations_api.get(BASE).data
    # two days instead of three: the watermark moves with the wait
    assert (
        automations_api.patch(f"{BASE}/{close['id']}", {"parameters": {"status": "resolved", "hours": 48}}).status
        == 200
    )
    fresh = new_ticket(tickets_api)
    assert tickets_api.patch(f"/api/support/tickets/{fresh['id']}", {"status": "resolved"}).status == 200
    since = ticket_row(tenant, fresh["id"])["status_changed_at"]
    automations.sweep(since + timedelta(hours=47), tenants=lambda: [tenant])
    assert ticket_row(tenant, fresh["id"])["status"] == "resolved"
    automations.sweep(since + timedelta(hours=49), tenants=lambda: [tenant])
    assert ticket_row(tenant, fresh["id"])["status"] == "closed"
    assert ticket_row(tenant, old["id"])["status"] == "resolved"  # overdue before the rule: left as it is


def test_chat_started_and_ended_are_captured_and_run(automations_api: HandlerClient, posts: Posts) -> None:
    from functions.chat import app as chat_app
    from support.services import connections

    tenant = automations_api.tenant
    only_these_rules(
        automations_api,
        rule(
            "hello",
            "chat_started",
            conditions={"all": [{"field": "visitorName", "operator": "equals", "value": "ada"}]},
            actions=[{"type": "notify_staff", "value": "Ada is here"}],
        ),
        rule("bye", "chat_ended", conditions={"all": []}, actions=[{"type": "notify_staff", "value": "a chat ended"}]),
    )
    staff = f"staff-{uuid4().hex[:10]}"
    assert connections.open_connection(admin(tenant), staff)
    chat = HandlerClient(chat_app.lambda_handler, tenant=tenant)
    ada = chat.post("/api/support/chat/sessions", {"visitorId": f"v-{uuid4()}", "visitorName": "Ada"})
    lin = chat.post("/api/support/chat/sessions", {"visitorId": f"v-{uuid4()}", "visitorName": "Lin"})
    assert chat.post(f"/api/support/chat/sessions/{ada.data['id']}/end").status == 200
    # both starts (the event is the tenant's; Lin's matches no condition) and Ada's end ran after each commit,
    # started by the chat function itself (no sweep)
    assert pending(tenant) == 0
    assert automations.run_pending(tenant).events == 0
    notices = posts.of(staff, automations.NOTICE)
    assert [(n["message"], n["sessionId"]) for n in notices] == [
        ("Ada is here", ada.data["id"]),
        ("a chat ended", ada.data["id"]),
    ]
    assert lin.data["id"] not in {n["sessionId"] for n in notices}


def test_a_business_hours_condition_reads_the_rules_own_window(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    closed_all_week = {"timeZone": "Europe/Berlin", "days": [], "start": "09:00", "end": "17:00"}
    outside = {"all": [{"field": "businessHours", "operator": "equals", "value": "outside"}]}
    inside = {"all": [{"field": "businessHours", "operator": "equals", "value": "inside"}]}
    only_these_rules(
        automations_api,
        rule(
            "after hours",
            conditions=outside,
            businessHours=closed_all_week,
            actions=[{"type": "add_internal_note", "value": "we are closed"}],
        ),
        rule(
            "in hours",
            conditions=inside,
            businessHours=closed_all_week,
            actions=[{"type": "add_internal_note", "value": "we are open"}],
        ),
    )
    ticket = new_ticket(tickets_api)
    assert [e["message"] for e in entries(tickets_api.tenant, ticket["id"])] == ["we are closed"]


def test_a_websocket_chat_start_and_end_run_their_rules_after_the_commit(
    automations_api: HandlerClient, posts: Posts
) -> None:
    """The WebSocket function's startChat and endChat start the run themselves, as the tickets function does: the
    staff hear of the rule's notice without the every-minute sweep."""
    from support.models.widgets import WidgetCreate
    from support.services import connections, widgets
    from tests.integration.test_connection_rights import _invoke, _visitor_connects

    tenant = automations_api.tenant
    only_these_rules(
        automations_api,
        rule("hello", "chat_started", conditions={"all": []}, actions=[{"type": "notify_staff", "value": "hi"}]),
        rule("bye", "chat_ended", conditions={"all": []}, actions=[{"type": "notify_staff", "value": "bye"}]),
    )
    staff = f"staff-{uuid4().hex[:10]}"
    assert connections.open_connection(admin(tenant), staff)
    key = widgets.create_widget(admin(tenant), WidgetCreate(name="Shop", allowed_origins=["https://shop.example"]))
    context = _visitor_connects(tenant, key.widget_key)
    visitor = f"c-{uuid4().hex[:12]}"
    assert _invoke("$connect", context, visitor)["statusCode"] == 200
    started = _invoke("startChat", context, visitor, {"action": "startChat", "visitorName": "Lin"})
    session_id = __import__("json").loads(started["body"])["data"]["id"]
    assert pending(tenant) == 0
    assert [n["message"] for n in posts.of(staff, automations.NOTICE)] == ["hi"]
    _invoke("endChat", context, visitor, {"action": "endChat", "sessionId": session_id})
    assert pending(tenant) == 0
    assert [(n["message"], n["sessionId"]) for n in posts.of(staff, automations.NOTICE)] == [
        ("hi", session_id),
        ("bye", session_id),
    ]


def test_business_hours_without_a_window_are_the_desks_sla_hours_across_a_holiday_and_a_time_zone() -> None:
    from datetime import date

    from support.models.settings import SlaSettings

    # Open around the clock every day in New York, but not on its Christmas Day
    desk = SlaSettings.model_validate({"timeZone": "America/New_York", "holidays": ["2026-12-25"]})
    facts = automations.ticket_facts(TICKET, {}, NOW)
    facts.desk_hours = lambda: desk

    def at(moment: datetime) -> str:
        facts.at = moment
        return str(facts.get("businessHours"))

    assert at(datetime(2026, 12, 25, 3, tzinfo=UTC)) == "inside"  # 22:00 on the 24th in New York
    assert at(datetime(2026, 12, 25, 15, tzinfo=UTC)) == "outside"  # the holiday
    assert at(datetime(2026, 12, 26, 3, tzinfo=UTC)) == "outside"  # the 26th in UTC, still the 25th in New York
    assert at(datetime(2026, 12, 26, 6, tzinfo=UTC)) == "inside"  # 01:00 on the 26th in New York
    # the weekday's intervals in the desk's time zone: Mondays 09:00-17:00 in Tokyo only
    tokyo = SlaSettings.model_validate(
        {
            "timeZone": "Asia/Tokyo",
            "businessHours": {day: [] for day in ("tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
            | {"monday": [{"start": "09:00", "end": "17:00"}]},
        }
    )
    facts.desk_hours = lambda: tokyo
    assert at(datetime(2026, 12, 7, 1, tzinfo=UTC)) == "inside"  # Monday 10:00 in Tokyo
    assert at(datetime(2026, 12, 7, 10, tzinfo=UTC)) == "outside"  # Monday 19:00 in Tokyo, 10:00 UTC
    assert at(datetime(2026, 12, 6, 23, 59, tzinfo=UTC)) == "outside"  # Monday 08:59 in Tokyo (Sunday in UTC)
    assert at(datetime(2026, 12, 7, 7, 59, tzinfo=UTC)) == "inside"  # Monday 16:59 in Tokyo
    # a rule's own window still has the last word
    facts.window = {"timeZone": "UTC", "days": [1, 2, 3, 4, 5], "start": "09:00:00", "end": "17:00:00"}
    assert at(datetime(2026, 12, 7, 10, tzinfo=UTC)) == "inside"
    assert date(2026, 12, 25) in desk.holidays


def test_the_runner_reads_the_tenants_sla_hours_when_a_rule_has_no_window(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    from support.models.settings import SlaSettings
    from support.services import sla

    tenant = tickets_api.tenant
    outside = {"all": [{"field": "businessHours", "operator": "equals", "value": "outside"}]}
    only_these_rules(
        automations_api,
        rule("after hours", conditions=outside, actions=[{"type": "add_internal_note", "value": "we are closed"}]),
        rule(
            "own window",
            conditions={"all": [{"field": "businessHours", "operator": "equals", "value": "inside"}]},
            businessHours={"timeZone": "UTC", "days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:59:59"},
            actions=[{"type": "add_internal_note", "value": "our own hours"}],
        ),
    )
    # the desk's SLA hours: around the clock (the default), so a new ticket is inside them
    assert [e["message"] for e in entries(tenant, new_ticket(tickets_api)["id"])] == ["our own hours"]
    # today is a holiday where the desk is (and the days either side, whatever the clock says): outside
    today = datetime.now(UTC).date()
    holidays = [str(today + timedelta(days=d)) for d in (-1, 0, 1)]
    sla.put_sla_settings(
        admin(tenant), SlaSettings.model_validate({"timeZone": "Pacific/Auckland", "holidays": holidays})
    )
    assert [e["message"] for e in entries(tenant, new_ticket(tickets_api)["id"])] == ["we are closed", "our own hours"]


def test_the_web_form_and_a_channel_delivery_run_their_rules_after_the_commit(
    automations_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    """The widgets function's web form and the channels function's deliveries start the run themselves: no event
    is left for the sweep."""
    from functions.channels import app as channels_app
    from tests.integration.test_channels_api import message, new_channel, post_message
    from tests.integration.test_web_form import Desk, submit

    tenant = tickets_api.tenant
    only_these_rules(automations_api, rule("all urgent", conditions={"all": []}))
    form = submit(Desk(tenant).form())
    assert form.status == 201, form.body
    assert pending(tenant) == 0
    channel = new_channel(HandlerClient(channels_app.lambda_handler, tenant=tenant))
    delivered = post_message(channel["id"], channel["secret"], message())
    assert delivered.status == 200, delivered.body
    assert pending(tenant) == 0
    with tenant_transaction(tenant) as cur:
        cur.execute("SELECT channel, priority FROM support_tickets WHERE user_id = %s ORDER BY channel", (tenant,))
        assert [(r["channel"], r["priority"]) for r in cur.fetchall()] == [("social", "urgent"), ("web_form", "urgent")]
