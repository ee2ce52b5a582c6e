"""The widget's web form, POST /api/support/widget/tickets (issue 17): a visitor's message through the merchant's
page becomes a ticket of the key's tenant with channel web_form, through the real widgets handler and the real
database; refused as the visitor session route refuses; limited per address and per key; a honeypot."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import psycopg
import pytest

from local.database import DatabaseUrls
from local.gateway import LambdaContext, build_http_event
from support.services import rate_limits, widgets
from support.services.rate_limits import Bucket
from tests.http_events import HandlerClient, Reply, route_key

FORM = "/api/support/widget/tickets"
SHOP = "https://shop.example"
NOT_ADMITTED = "this widget key is unknown or revoked, or does not allow this page's origin"


def submit(body: Any, origin: str | None = SHOP, source_ip: str = "203.0.113.1") -> Reply:
    """The public route as a browser on `origin` calls it: no Authorization, so no claims."""
    from functions.widgets import app

    raw = body if isinstance(body, str) else json.dumps(body)
    event = build_http_event(
        route_key=route_key("POST", FORM),
        method="POST",
        raw_path=FORM,
        headers=[("content-type", "application/json")] + ([("origin", origin)] if origin else []),
        body=raw.encode(),
        claims=None,
        source_ip=source_ip,
    )
    result = app.lambda_handler(
        event, LambdaContext(function_name="WidgetsFunction", memory_limit_in_mb=512, timeout_seconds=10)
    )
    return Reply(status=result["statusCode"], body=json.loads(result["body"]), headers=result.get("headers") or {})


class Desk:
    """A tenant with a widget key for SHOP, its admin over the widgets, tickets and settings handlers."""

    def __init__(self, tenant: UUID) -> None:
        from functions.contacts import app as contacts_app
        from functions.settings import app as settings_app
        from functions.tickets import app as tickets_app
        from functions.widgets import app as widgets_app

        self.tenant = tenant
        self.widgets = HandlerClient(widgets_app.lambda_handler, tenant=tenant)
        self.tickets = HandlerClient(tickets_app.lambda_handler, tenant=tenant)
        self.settings = HandlerClient(settings_app.lambda_handler, tenant=tenant)
        self.contacts = HandlerClient(contacts_app.lambda_handler, tenant=tenant)
        reply = self.widgets.post("/api/support/widgets", {"name": "Shop", "allowedOrigins": [SHOP]})
        assert reply.status == 201, reply.body
        self.widget_key = str(reply.data["widgetKey"])

    def form(self, **fields: Any) -> dict[str, Any]:
        body = {
            "widgetKey": self.widget_key,
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "subject": "Where is my teapot?",
            "message": "Ordered on Monday,\nnothing since.\n",
        }
        return {key: value for key, value in (body | fields).items() if value is not None}

    def all_tickets(self) -> list[dict[str, Any]]:
        reply = self.tickets.get("/api/support/tickets", query={"limit": 100})
        assert reply.status == 200, reply.body
        return list(reply.data)


@pytest.fixture
def desk(db: DatabaseUrls, tenant: UUID) -> Desk:
    return Desk(tenant)


@pytest.fixture
def other_desk(db: DatabaseUrls, other_tenant: UUID) -> Desk:
    return Desk(other_tenant)


def stored(db: DatabaseUrls, tenant: UUID) -> dict[str, int]:
    """What the tenant has in the tables a form could write, counted as the owner (no row-level security)."""
    with psycopg.connect(db.admin) as conn:
        counts = {}
        for table in ("support_tickets", "support_contacts", "email_outbox"):
            row = conn.execute(f"SELECT count(*) FROM {table} WHERE user_id = %s", (tenant,)).fetchone()
            counts[table] = row[0] if row else 0
    return counts


NOTHING = {"support_tickets": 0, "support_contacts": 0, "email_outbox": 0}


def test_a_form_becomes_a_web_form_ticket_of_the_keys_tenant_with_its_contact_and_received_notice(
    desk: Desk, other_desk: Desk, db: DatabaseUrls
) -> None:
    email = {"fromAddress": "help@shop.example", "fromName": "Shop help"}
    assert desk.settings.put("/api/support/settings/email", email).status == 200

    reply = submit(desk.form(category=None))

    assert reply.status == 201, reply.body
    assert reply.body == {"success": True, "data": {"reference": "#1001"}}  # the reference, and nothing else
    (ticket,) = desk.all_tickets()
    assert ticket["reference"] == "#1001"
    assert ticket["channel"] == "web_form"
    assert (ticket["customerName"], ticket["customerEmail"]) == ("Ada Lovelace", "ada@example.com")
    assert ticket["subject"] == "Where is my teapot?"
    assert ticket["description"] == "Ordered on Monday,\nnothing since.\n"  # kept as written
    assert (ticket["status"], ticket["priority"], ticket["category"]) == ("open", "medium", None)
    # the customer's contact, linked as for any ticket
    contact = desk.contacts.get(f"/api/support/contacts/{ticket['contactId']}")
    assert contact.status == 200, contact.body
    assert "ada@example.com" in json.dumps(contact.data)
    # the customer hears of it by email, with the reference (the outbox's `received` notice)
    with psycopg.connect(db.admin) as conn:
        rows = conn.execute("SELECT kind, ticket_id FROM email_outbox WHERE user_id = %s", (desk.tenant,)).fetchall()
    assert rows == [("received", UUID(ticket["id"]))]
    # filterable by channel, findable by reference; another tenant sees nothing of it
    assert [t["id"] for t in desk.tickets.get("/api/support/tickets", query={"channel": "web_form"}).data] == [
        ticket["id"]
    ]
    assert [t["id"] for t in desk.tickets.get("/api/support/tickets", query={"search": "#1001"}).data] == [ticket["id"]]
    assert other_desk.all_tickets() == []
    assert other_desk.tickets.get(f"/api/support/tickets/{ticket['id']}").status == 404
    assert stored(db, other_desk.tenant) == NOTHING


def test_each_tenants_forms_are_numbered_in_that_tenant_only(desk: Desk, other_desk: Desk) -> None:
    assert submit(desk.form()).data == {"reference": "#1001"}
    assert submit(other_desk.form()).data == {"reference": "#1001"}
    assert submit(desk.form(), source_ip="203.0.113.2").data == {"reference": "#1002"}
    assert [t["reference"] for t in desk.all_tickets()] == ["#1002", "#1001"]
    assert [t["reference"] for t in other_desk.all_tickets()] == ["#1001"]


def test_a_foreign_origin_no_origin_an_unknown_key_and_a_revoked_key_get_the_one_refusal(
    desk: Desk, db: DatabaseUrls
) -> None:
    revoked = Desk(desk.tenant)
    assert revoked.widgets.delete(f"/api/support/widgets/{revoked.widget_key}").status == 200

    replies = [
        submit(desk.form(), origin="https://evil.example"),
        submit(desk.form(), origin=None),
        submit(desk.form(), origin="not an origin"),
        submit(desk.form(widgetKey="wk_" + "u" * 32)),
        submit(revoked.form()),
    ]

    for reply in replies:
        assert reply.status == 403, reply.body
        assert reply.body == replies[0].body
    assert replies[0].error == {"code": "forbidden", "message": NOT_ADMITTED, "details": []}
    assert stored(db, desk.tenant) == NOTHING
    with psycopg.connect(db.admin) as conn:  # refused requests count against no bucket (the staff's aside: the set-up)
        row = conn.execute(
            "SELECT count(*) FROM rate_limit_counters WHERE user_id = %s AND scope <> 'api'", (desk.tenant,)
        ).fetchone()
    assert row == (0,)


def test_a_filled_honeypot_is_answered_as_a_person_is_and_stores_nothing(desk: Desk, db: DatabaseUrls) -> None:
    bot = submit(desk.form(website="https://cheap-pills.example"))

    assert bot.status == 201, bot.body
    assert set(bot.body) == {"success", "data"} and set(bot.data) == {"reference"}
    assert bot.data["reference"] == "#1001"  # a real number of the tenant's, skipped: no ticket will ever have it
    assert stored(db, desk.tenant) == NOTHING
    # A person afterwards gets the next number: the bot's reference never names their ticket
    person = submit(desk.form(website=""), source_ip="203.0.113.2")
    assert person.status == 201 and person.data == {"reference": "#1002"}
    assert [t["reference"] for t in desk.all_tickets()] == ["#1002"]
    assert desk.tickets.get("/api/support/tickets", query={"search": "#1001"}).data == []
    # and the answers have the same shape and headers
    assert set(person.body) == set(bot.body) and set(person.data) == set(bot.data)
    assert person.headers.keys() == bot.headers.keys()


def test_the_honeypot_reference_is_only_for_the_bound_tenant_and_fails_closed_without_one(
    desk: Desk, db: DatabaseUrls
) -> None:
    with psycopg.connect(db.app) as conn:
        with pytest.raises(psycopg.errors.UndefinedObject), conn.transaction():
            conn.execute("SELECT skip_ticket_reference()")
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(desk.tenant),))
            first = conn.execute("SELECT skip_ticket_reference()").fetchone()
            second = conn.execute("SELECT skip_ticket_reference()").fetchone()
    assert (first, second) == ((1001,), (1002,))
    assert submit(desk.form()).data == {"reference": "#1003"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": None}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": "x" * 201}, "body.name"),
        ({"email": "not-an-email"}, "body.email"),
        ({"email": None}, "body.email"),
        ({"subject": ""}, "body.subject"),
        ({"subject": "s" * 501}, "body.subject"),
        ({"subject": "nul \x00 inside"}, "body.subject"),
        ({"message": None}, "body.message"),
        ({"message": "  \n "}, "body.message"),
        ({"message": "nul \x00"}, "body.message"),
        ({"category": "c" * 101}, "body.category"),
        ({"widgetKey": "not-a-key"}, "body.widgetKey"),
        ({"website": "w" * 2001}, "body.website"),
        ({"priority": "urgent"}, "body.priority"),  # a visitor sets no priority, channel or custom fields
        ({"channel": "api"}, "body.channel"),
    ],
)
def test_invalid_forms_are_422_with_the_field_and_store_nothing(  # as the API's TicketCreate
    desk: Desk, db: DatabaseUrls, fields: dict[str, Any], field: str
) -> None:
    reply = submit(desk.form(**fields))

    assert reply.status == 422, reply.body
    assert field in [d["field"] for d in reply.error["details"]], reply.error
    assert stored(db, desk.tenant) == NOTHING


def test_malformed_json_is_400_and_a_message_over_the_limit_is_413_as_in_the_api(desk: Desk, db: DatabaseUrls) -> None:
    assert submit("{not json").status == 400
    over = submit(desk.form(message="m" * (50 * 1024 + 1)))
    assert over.status == 413 and over.error["code"] == "payload_too_large", over.body
    assert submit(desk.form(message="m" * (50 * 1024))).status == 201  # the limit itself is fine
    assert stored(db, desk.tenant)["support_tickets"] == 1


def test_a_category_in_use_is_kept_and_a_new_one_is_kept_aside(desk: Desk) -> None:
    staff = desk.tickets.post(
        "/api/support/tickets",
        {"customerName": "S", "customerEmail": "s@example.com", "subject": "s", "category": "shipping"},
    )
    assert staff.status == 201, staff.body

    known = submit(desk.form(category="shipping"))
    new = submit(desk.form(category="made-up-by-a-stranger"), source_ip="203.0.113.2")

    assert known.status == new.status == 201
    by_reference = {t["reference"]: t for t in desk.all_tickets()}
    assert by_reference[known.data["reference"]]["category"] == "shipping"
    kept_aside = by_reference[new.data["reference"]]
    assert kept_aside["category"] is None
    assert kept_aside["customFields"] == {"requestedCategory": "made-up-by-a-stranger"}


def test_a_flood_from_one_address_is_429_with_retry_after_and_nothing_beyond_the_limit_is_stored(
    desk: Desk, other_desk: Desk, db: DatabaseUrls
) -> None:
    burst = rate_limits.FORM_PER_IP.burst
    replies = [submit(desk.form(subject=f"n{n}"), source_ip="203.0.113.7") for n in range(burst + 3)]

    assert [r.status for r in replies] == [201] * burst + [429] * 3
    over = replies[-1]
    assert over.error["code"] == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 60  # one form a minute refills it
    assert stored(db, desk.tenant)["support_tickets"] == burst
    # a bot's filled honeypot counts too (it is answered 429 as well), and stores nothing either way
    assert submit(desk.form(website="x"), source_ip="203.0.113.7").status == 429
    # another address of the tenant, and the same address on another tenant's widget, go on
    assert submit(desk.form(), source_ip="203.0.113.8").status == 201
    assert submit(other_desk.form(), source_ip="203.0.113.7").status == 201
    assert stored(db, desk.tenant)["support_tickets"] == burst + 1


def test_a_flood_across_addresses_is_held_by_the_keys_limit(
    desk: Desk, other_desk: Desk, db: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small key budget that refills slowly, so that the test does not race the refill
    monkeypatch.setattr(widgets, "FORM_PER_KEY", Bucket("form-key", burst=4, per_second=0.01))

    replies = [submit(desk.form(), source_ip=f"198.51.100.{n}") for n in range(1, 8)]

    assert [r.status for r in replies] == [201] * 4 + [429] * 3
    assert int(replies[-1].headers["Retry-After"]) >= 90
    assert stored(db, desk.tenant)["support_tickets"] == 4
    assert submit(other_desk.form(), source_ip="198.51.100.9").status == 201
    # the key's limit is the form's own: the visitor session route of the same key still admits
    from tests.integration.test_widgets_api import visitor_session

    assert visitor_session({"widgetKey": desk.widget_key}).status == 201
