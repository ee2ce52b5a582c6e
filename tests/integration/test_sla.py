"""SLA policies (issue 18, docs/sla.md): the settings, business time in any time zone, each ticket's due times and
state, and the sweep. Times are given (a test clock): tickets are made with a chosen created_at, and pauses begin
and end at chosen instants (the trigger's `support.sla_clock`); the sweep is called with its `now`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from local.database import DatabaseUrls
from support.models.settings import SlaSettings
from support.services import sla
from tests.http_events import HandlerClient
from tests.integration.test_tickets_api import BASE, new_ticket

SETTINGS = "/api/support/settings/sla"
SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@pytest.fixture
def settings_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.settings import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def office_hours(zone: str, **overrides: Any) -> dict[str, Any]:
    """A policy body: 09:00-17:00 Monday to Friday in `zone`; urgent first response 60 min, resolution 480 min."""
    hours = {
        day: ([{"start": "09:00", "end": "17:00"}] if day not in ("saturday", "sunday") else []) for day in WEEKDAYS
    }
    body: dict[str, Any] = {
        "targets": {
            "urgent": {"firstResponseMinutes": 60, "resolutionMinutes": 480},
            "high": {"firstResponseMinutes": 120, "resolutionMinutes": 960},
            "medium": {"firstResponseMinutes": 240, "resolutionMinutes": 1920},
            "low": {"firstResponseMinutes": None, "resolutionMinutes": None},
        },
        "timeZone": zone,
        "businessHours": hours,
        "holidays": [],
        "pauseStatuses": ["waiting_customer"],
    }
    body.update(overrides)
    return body


def put_policy(api: HandlerClient, body: dict[str, Any]) -> dict[str, Any]:
    reply = api.put(SETTINGS, body)
    assert reply.status == 200, reply.body
    return dict(reply.data)


def policy_json(body: dict[str, Any]) -> str:
    """The policy as the database stores it (the model's snake_case JSON)."""
    return json.dumps(SlaSettings.model_validate(body).model_dump(mode="json"))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def owner(db: DatabaseUrls) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(db.owner, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def add_business(owner: psycopg.Connection[Any], body: dict[str, Any], start: str, minutes: int) -> datetime:
    row = owner.execute(
        "SELECT (sla_add_business(%s::jsonb, %s, ARRAY[%s::bigint]))[1] AS at", (policy_json(body), start, minutes * 60)
    ).fetchone()
    assert row is not None
    return row["at"]


def business_seconds(owner: psycopg.Connection[Any], body: dict[str, Any], since: str, till: str) -> int:
    row = owner.execute(
        "SELECT sla_business_seconds(%s::jsonb, %s, %s) AS s", (policy_json(body), since, till)
    ).fetchone()
    assert row is not None
    return int(row["s"])


def insert_ticket(
    db: DatabaseUrls, tenant: UUID, created_at: str | datetime, priority: str = "urgent", status: str = "open"
) -> dict[str, Any]:
    """A ticket made at a chosen instant (the owner, bound to the tenant, so the trigger reads its policy)."""
    with psycopg.connect(db.owner, row_factory=dict_row) as conn:
        conn.execute(SET_TENANT, (str(tenant),))
        row = conn.execute(
            """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject, priority, status,
                created_at, updated_at)
            VALUES (%s, 'Ada', 'ada@example.com', 'Clocked', %s, %s, %s, %s)
            RETURNING id, first_response_due_at, resolution_due_at, first_response_risk_at, resolution_risk_at""",
            (tenant, priority, status, created_at, created_at),
        ).fetchone()
    assert row is not None
    return row


def change_at(db: DatabaseUrls, tenant: UUID, ticket_id: UUID, clock: str | datetime, **changes: str) -> dict[str, Any]:
    """Change a ticket's status or priority as if at `clock` (the trigger's test clock)."""
    assignments = ", ".join(f"{column} = %({column})s" for column in changes)
    with psycopg.connect(db.owner, row_factory=dict_row) as conn:
        conn.execute(SET_TENANT, (str(tenant),))
        conn.execute("SELECT set_config('support.sla_clock', %s, true)", (str(clock),))
        row = conn.execute(
            f"""UPDATE support_tickets SET {assignments} WHERE user_id = %(tenant)s AND id = %(id)s
            RETURNING first_response_due_at, resolution_due_at, sla_paused_at, sla_paused_seconds""",
            {**changes, "tenant": tenant, "id": ticket_id},
        ).fetchone()
    assert row is not None
    return row


# --- the settings -----------------------------------------------------------------------------------------------


def test_a_tenant_that_never_chose_has_the_defaults_and_the_database_agrees(
    settings_api: HandlerClient, owner: psycopg.Connection[Any]
) -> None:
    reply = settings_api.get(SETTINGS)
    assert reply.status == 200, reply.body
    assert reply.data["pauseStatuses"] == ["waiting_customer"]
    assert reply.data["timeZone"] == "UTC"
    assert reply.data["targets"]["urgent"] == {"firstResponseMinutes": 60, "resolutionMinutes": 480}
    row = owner.execute("SELECT sla_default_policy() AS p").fetchone()
    assert row is not None
    assert row["p"] == SlaSettings().model_dump(mode="json")


def test_an_admin_puts_the_whole_policy_and_reads_it_back(settings_api: HandlerClient) -> None:
    body = office_hours("America/New_York", holidays=["2026-12-25", "2026-07-03"])
    stored = put_policy(settings_api, body)
    assert stored["holidays"] == ["2026-07-03", "2026-12-25"]  # sorted
    assert settings_api.get(SETTINGS).data == stored
    assert stored["businessHours"]["saturday"] == []
    assert stored["targets"]["low"] == {"firstResponseMinutes": None, "resolutionMinutes": None}


def test_only_an_admin_writes_the_policy(settings_api: HandlerClient, tenant: UUID) -> None:
    agent = settings_api.as_tenant(tenant, role="agent")
    assert agent.put(SETTINGS, office_hours("UTC")).status == 403
    assert agent.get(SETTINGS).status == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timeZone": "Mars/Olympus_Mons"}, "body.timeZone"),
        ({"timeZone": "../../etc/passwd"}, "body.timeZone"),
        (
            {"businessHours": {"monday": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "17:00"}]}},
            "body.businessHours.monday",
        ),
        ({"businessHours": {"monday": [{"start": "17:00", "end": "09:00"}]}}, "body.businessHours.monday.0"),
        ({"businessHours": {"monday": [{"start": "9am", "end": "17:00"}]}}, "body.businessHours.monday.0.start"),
        ({"businessHours": {"monday": [{"start": "09:00", "end": "24:30"}]}}, "body.businessHours.monday.0.end"),
        ({"businessHours": {day: [] for day in WEEKDAYS}}, "body"),
        ({"pauseStatuses": ["resolved"]}, "body.pauseStatuses.0"),
        ({"pauseStatuses": ["sleeping"]}, "body.pauseStatuses.0"),
        ({"holidays": ["2026-12-25", "2026-12-25"]}, "body.holidays"),
        ({"holidays": ["2026-02-30"]}, "body.holidays.0"),
        ({"targets": {"urgent": {"firstResponseMinutes": 0}}}, "body.targets.urgent.firstResponseMinutes"),
        ({"businessDays": []}, "body.businessDays"),
    ],
)
def test_an_invalid_policy_is_a_422_naming_the_field(
    settings_api: HandlerClient, change: dict[str, Any], field: str
) -> None:
    before = settings_api.get(SETTINGS).data
    reply = settings_api.put(SETTINGS, {**office_hours("UTC"), **change})
    assert reply.status == 422, reply.body
    assert field in {detail["field"] for detail in reply.error["details"]}, reply.error
    assert settings_api.get(SETTINGS).data == before  # nothing stored


# --- business time ------------------------------------------------------------------------------------------


def test_business_time_skips_the_weekend(owner: psycopg.Connection[Any]) -> None:
    berlin = office_hours("Europe/Berlin")
    # Friday 2 October 2026, 16:00 in Berlin (CEST): one hour left that day, the second on Monday from 09:00
    assert add_business(owner, berlin, "2026-10-02T16:00:00+02:00", 120) == utc("2026-10-05T10:00:00+02:00")
    # Saturday: nothing before Monday 09:00
    assert add_business(owner, berlin, "2026-10-03T12:00:00+02:00", 30) == utc("2026-10-05T09:30:00+02:00")
    assert business_seconds(owner, berlin, "2026-10-02T16:00:00+02:00", "2026-10-05T10:00:00+02:00") == 7200


def test_business_time_skips_a_holiday(owner: psycopg.Connection[Any]) -> None:
    # Thursday 24 December 2026, 16:00 in New York; the 25th is a holiday, the 26th and 27th a weekend
    body = office_hours("America/New_York", holidays=["2026-12-25"])
    assert add_business(owner, body, "2026-12-24T16:00:00-05:00", 120) == utc("2026-12-28T10:00:00-05:00")
    without = office_hours("America/New_York")
    assert add_business(owner, without, "2026-12-24T16:00:00-05:00", 120) == utc("2026-12-25T10:00:00-05:00")


def test_business_time_across_new_yorks_spring_forward(owner: psycopg.Connection[Any]) -> None:
    # DST begins in New York on Sunday 8 March 2026: Friday 16:00 EST (21:00Z) + 2 business hours is Monday 10:00
    # EDT, which is 14:00Z (not 15:00Z: the wall clock, not the UTC offset, opens the office)
    body = office_hours("America/New_York")
    assert add_business(owner, body, "2026-03-06T16:00:00-05:00", 120) == utc("2026-03-09T14:00:00+00:00")
    assert business_seconds(owner, body, "2026-03-06T21:00:00+00:00", "2026-03-09T14:00:00+00:00") == 7200
    # around the clock on the Sunday of the change: that day has 23 hours
    sunday_only = office_hours(
        "America/New_York",
        businessHours={day: ([{"start": "00:00", "end": "24:00"}] if day == "sunday" else []) for day in WEEKDAYS},
    )
    assert business_seconds(owner, sunday_only, "2026-03-07T00:00:00-05:00", "2026-03-10T00:00:00-04:00") == 23 * 3600


def test_business_time_across_berlins_fall_back(owner: psycopg.Connection[Any]) -> None:
    # DST ends in Berlin on Sunday 25 October 2026: that day has 25 hours
    sunday_only = office_hours(
        "Europe/Berlin",
        businessHours={day: ([{"start": "00:00", "end": "24:00"}] if day == "sunday" else []) for day in WEEKDAYS},
    )
    assert business_seconds(owner, sunday_only, "2026-10-24T12:00:00+02:00", "2026-10-27T00:00:00+01:00") == 25 * 3600
    # Saturday noon + 24 business hours: Sunday 00:00 CEST (Saturday 22:00Z) + 24 h = Sunday 23:00 CET
    assert add_business(owner, sunday_only, "2026-10-24T12:00:00+02:00", 24 * 60) == utc("2026-10-25T23:00:00+01:00")
    # 09:00 on the Monday after opens at 08:00Z (CET), an hour later in UTC than the Friday before (07:00Z, CEST)
    berlin = office_hours("Europe/Berlin")
    assert add_business(owner, berlin, "2026-10-23T17:00:00+02:00", 60) == utc("2026-10-26T09:00:00+00:00")
    assert add_business(owner, berlin, "2026-10-22T17:00:00+02:00", 60) == utc("2026-10-23T08:00:00+00:00")


def test_split_shifts_and_a_wall_clock_policy(owner: psycopg.Connection[Any]) -> None:
    split = office_hours(
        "Asia/Kolkata",
        businessHours={
            **{d: [] for d in WEEKDAYS},
            "monday": [{"start": "14:00", "end": "17:00"}, {"start": "09:00", "end": "12:00"}],
        },
    )
    # Monday 11:00 IST + 2 h: 11:00-12:00, then 14:00-15:00
    assert add_business(owner, split, "2026-03-02T11:00:00+05:30", 120) == utc("2026-03-02T15:00:00+05:30")
    always = SlaSettings().model_dump(by_alias=True, mode="json")
    assert add_business(owner, always, "2026-03-07T23:30:00+00:00", 90) == utc("2026-03-08T01:00:00+00:00")


# --- tickets: due times, pauses, state ---------------------------------------------------------------------------


def test_a_ticket_carries_its_due_times_in_business_hours(
    db: DatabaseUrls, tenant: UUID, settings_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    put_policy(settings_api, office_hours("America/New_York", holidays=["2026-03-09"]))
    made = insert_ticket(db, tenant, "2026-03-06T16:30:00-05:00", priority="urgent")
    # first response: 30 min on Friday, 30 on Tuesday (Monday is a holiday), after the DST change
    assert made["first_response_due_at"] == utc("2026-03-10T09:30:00-04:00")
    assert made["first_response_risk_at"] == utc("2026-03-10T09:18:00-04:00")  # 48 of the 60 minutes
    # resolution: 8 h = 30 min Friday + 7.5 h Tuesday
    assert made["resolution_due_at"] == utc("2026-03-10T16:30:00-04:00")
    ticket = tickets_api.get(f"{BASE}/{made['id']}").data
    assert utc(ticket["firstResponseDueAt"]) == made["first_response_due_at"]
    assert utc(ticket["resolutionDueAt"]) == made["resolution_due_at"]
    assert ticket["slaState"] == "breached"  # 2026-03 is long past
    # a priority without targets has no due times; a change of priority recomputes them
    low = tickets_api.patch(f"{BASE}/{made['id']}", {"priority": "low"}).data
    assert (low["firstResponseDueAt"], low["resolutionDueAt"], low["slaState"]) == (None, None, "ok")
    high = tickets_api.patch(f"{BASE}/{made['id']}", {"priority": "high"}).data
    assert utc(high["firstResponseDueAt"]) == utc("2026-03-10T10:30:00-04:00")


def test_waiting_on_the_customer_moves_the_due_times_out_by_the_paused_business_time(
    db: DatabaseUrls, tenant: UUID, settings_api: HandlerClient
) -> None:
    put_policy(settings_api, office_hours("America/New_York"))
    made = insert_ticket(db, tenant, "2026-03-02T10:00:00-05:00")  # Monday
    assert made["first_response_due_at"] == utc("2026-03-02T11:00:00-05:00")
    assert made["resolution_due_at"] == utc("2026-03-03T10:00:00-05:00")
    paused = change_at(db, tenant, made["id"], "2026-03-02T10:30:00-05:00", status="waiting_customer")
    assert paused["sla_paused_at"] == utc("2026-03-02T10:30:00-05:00")
    assert paused["first_response_due_at"] == made["first_response_due_at"]  # stands still while paused
    # the customer answers at 13:30: three business hours paused
    resumed = change_at(db, tenant, made["id"], "2026-03-02T13:30:00-05:00", status="open")
    assert resumed["sla_paused_at"] is None
    assert resumed["sla_paused_seconds"] == 3 * 3600
    assert resumed["first_response_due_at"] == utc("2026-03-02T14:00:00-05:00")
    assert resumed["resolution_due_at"] == utc("2026-03-03T13:00:00-05:00")
    # paused overnight, Monday 16:00 to Tuesday 10:00: only two business hours (16-17, 9-10) more
    change_at(db, tenant, made["id"], "2026-03-02T16:00:00-05:00", status="waiting_customer")
    again = change_at(db, tenant, made["id"], "2026-03-03T10:00:00-05:00", status="in_progress")
    assert again["sla_paused_seconds"] == 5 * 3600
    assert again["resolution_due_at"] == utc("2026-03-03T15:00:00-05:00")
    # a status that is not a pause changes nothing
    assert change_at(db, tenant, made["id"], "2026-03-03T11:00:00-05:00", status="open")["sla_paused_seconds"] == (
        5 * 3600
    )


def test_the_pause_statuses_are_the_policys(db: DatabaseUrls, tenant: UUID, settings_api: HandlerClient) -> None:
    put_policy(settings_api, office_hours("UTC", pauseStatuses=[]))
    made = insert_ticket(db, tenant, "2026-03-02T10:00:00+00:00")
    paused = change_at(db, tenant, made["id"], "2026-03-02T10:30:00+00:00", status="waiting_customer")
    assert paused["sla_paused_at"] is None


def _states(api: HandlerClient, state: str) -> set[str]:
    reply = api.get(BASE, query={"slaState": state})
    assert reply.status == 200, reply.body
    return {t["id"] for t in reply.data}


def test_sla_state_and_its_filter(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID, tickets_api: HandlerClient
) -> None:
    now = datetime.now(UTC)
    breached = insert_ticket(db, tenant, now - timedelta(hours=2))["id"]  # urgent: 60 min to a first response
    at_risk = insert_ticket(db, tenant, now - timedelta(minutes=50))["id"]  # 48 min is the 80 %
    fine = new_ticket(tickets_api, priority="urgent")["id"]
    answered = insert_ticket(db, tenant, now - timedelta(minutes=50))["id"]
    reply = {"senderType": "agent", "senderName": "Grace", "message": "On it"}
    assert tickets_api.post(f"{BASE}/{answered}/conversations", reply).status == 201
    met = new_ticket(tickets_api, priority="urgent")["id"]
    assert tickets_api.patch(f"{BASE}/{met}", {"status": "resolved"}).data["slaState"] == "met"
    paused = insert_ticket(db, tenant, now - timedelta(minutes=20))["id"]
    change_at(db, tenant, paused, now - timedelta(minutes=10), status="waiting_customer")
    # another tenant's breached ticket
    insert_ticket(db, other_tenant, now - timedelta(hours=2))

    assert _states(tickets_api, "breached") == {str(breached)}
    assert _states(tickets_api, "at_risk") == {str(at_risk)}
    assert _states(tickets_api, "met") == {met}
    assert _states(tickets_api, "ok") == {fine, str(answered), str(paused)}
    assert tickets_api.get(f"{BASE}/{at_risk}").data["slaState"] == "at_risk"
    assert tickets_api.get(f"{BASE}/{answered}").data["slaState"] == "ok"  # answered in time, resolution ahead
    bad = tickets_api.get(BASE, query={"slaState": "late"})
    assert bad.status == 422
    assert "query.slaState" in {d["field"] for d in bad.error["details"]}
    # the dashboard's recent tickets carry the same state
    from functions.dashboard import app as dashboard_app

    dashboard = HandlerClient(dashboard_app.lambda_handler, tenant=tenant).get("/api/support/dashboard")
    assert dashboard.status == 200, dashboard.body
    recent = {t["id"]: t["slaState"] for t in dashboard.data["recentTickets"]}
    assert recent and all(
        tickets_api.get(f"{BASE}/{ticket_id}").data["slaState"] == state for ticket_id, state in recent.items()
    )


# --- the sweep ------------------------------------------------------------------------------------------------


def _mine(events: list[sla.SlaEvent], tenant: UUID) -> list[tuple[str, str, str]]:
    return sorted((str(e.ticket_id), e.target, e.kind) for e in events if e.tenant_id == tenant)


def test_the_sweep_records_each_warning_and_breach_once(
    db: DatabaseUrls, tenant: UUID, other_tenant: UUID, tickets_api: HandlerClient
) -> None:
    ticket = new_ticket(tickets_api, priority="urgent")  # default policy: 60 min, 480 min, around the clock
    theirs = new_ticket(tickets_api.as_tenant(other_tenant), priority="urgent")
    created = utc(ticket["createdAt"])
    assert utc(ticket["firstResponseDueAt"]) == created + timedelta(minutes=60)

    assert _mine(sla.sweep(created + timedelta(minutes=40)), tenant) == []
    first = sla.sweep(created + timedelta(minutes=50))
    assert _mine(first, tenant) == [(ticket["id"], "first_response", "at_risk")]
    assert _mine(first, other_tenant) == [(theirs["id"], "first_response", "at_risk")]  # every tenant's
    assert _mine(sla.sweep(created + timedelta(minutes=50)), tenant) == []  # twice: once
    breach = sla.sweep(created + timedelta(minutes=61))
    assert _mine(breach, tenant) == [(ticket["id"], "first_response", "breached")]
    assert _mine(sla.sweep(created + timedelta(minutes=61)), tenant) == []
    # a change that rewrites the queue (a priority change back and forth) does not record them again
    tickets_api.patch(f"{BASE}/{ticket['id']}", {"priority": "high"})
    tickets_api.patch(f"{BASE}/{ticket['id']}", {"priority": "urgent"})
    assert _mine(sla.sweep(created + timedelta(minutes=62)), tenant) == []
    # resolution: 80 % of 480 min, then the breach; a late sweep that finds both due records the breach only
    late = sla.sweep(created + timedelta(minutes=481))
    assert _mine(late, tenant) == [(ticket["id"], "resolution", "breached")]
    assert _mine(sla.sweep(created + timedelta(minutes=500)), tenant) == []
    with psycopg.connect(db.app, row_factory=dict_row) as conn:  # the runtime role sees its own tenant's only
        conn.execute(SET_TENANT, (str(tenant),))
        rows = conn.execute("SELECT ticket_id, target, kind FROM ticket_sla_events ORDER BY target, kind").fetchall()
    assert [(str(r["ticket_id"]), r["target"], r["kind"]) for r in rows] == [
        (ticket["id"], "first_response", "at_risk"),
        (ticket["id"], "first_response", "breached"),
        (ticket["id"], "resolution", "breached"),
    ]


def test_the_sweep_skips_what_was_met_or_paused(db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient) -> None:
    answered = new_ticket(tickets_api, priority="urgent")
    reply = {"senderType": "agent", "senderName": "Grace", "message": "On it"}
    assert tickets_api.post(f"{BASE}/{answered['id']}/conversations", reply).status == 201
    note = new_ticket(tickets_api, priority="urgent")  # an internal note is no response
    assert tickets_api.post(f"{BASE}/{note['id']}/conversations", {**reply, "isInternal": True}).status == 201
    resolved = new_ticket(tickets_api, priority="urgent")
    tickets_api.patch(f"{BASE}/{resolved['id']}", {"status": "resolved"})
    waiting = new_ticket(tickets_api, priority="urgent")
    tickets_api.patch(f"{BASE}/{waiting['id']}", {"status": "waiting_customer"})
    created = utc(answered["createdAt"])
    events = _mine(sla.sweep(created + timedelta(minutes=70)), tenant)
    assert events == sorted([(note["id"], "first_response", "breached")])


def test_two_concurrent_sweeps_record_once(db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient) -> None:
    tickets = [new_ticket(tickets_api, priority="urgent") for _ in range(20)]
    at = utc(tickets[-1]["createdAt"]) + timedelta(minutes=61)
    sweep = "SELECT user_id, ticket_id FROM sla_sweep(%s, 10000)"
    with (
        psycopg.connect(db.app, row_factory=dict_row) as first,
        psycopg.connect(db.app, row_factory=dict_row) as second,
    ):
        # the first sweep holds its queue rows (uncommitted) while the second runs: it skips them
        taken = first.execute(sweep, (at,)).fetchall()
        skipped = second.execute(sweep, (at,)).fetchall()
        first.commit()
        second.commit()
        after = second.execute(sweep, (at,)).fetchall()
    mine = [str(r["ticket_id"]) for r in taken + skipped + after if r["user_id"] == tenant]
    assert sorted(mine) == sorted(t["id"] for t in tickets)
    assert [r for r in skipped + after if r["user_id"] == tenant] == []


# --- compliance: the dashboard ----------------------------------------------------------------------------------


def test_the_dashboard_shows_sla_compliance_per_priority_with_business_time(
    db: DatabaseUrls, tenant: UUID, settings_api: HandlerClient, tickets_api: HandlerClient
) -> None:
    from functions.dashboard import app as dashboard_app

    put_policy(settings_api, office_hours("America/New_York"))
    # urgent (60 min first response, 480 min resolution), made on a Monday at 10:00 New York time
    quick = insert_ticket(db, tenant, "2026-03-02T10:00:00-05:00")["id"]
    slow = insert_ticket(db, tenant, "2026-03-02T16:30:00-05:00")["id"]
    # answered at 10:30 (in time, 30 business minutes); the other at 09:45 on Tuesday (30 + 45 business minutes: late)
    with psycopg.connect(db.owner) as conn:
        conn.execute(SET_TENANT, (str(tenant),))
        for ticket_id, answered in ((quick, "2026-03-02T10:30:00-05:00"), (slow, "2026-03-03T09:45:00-05:00")):
            conn.execute(
                """UPDATE support_tickets SET first_response_time = extract(epoch FROM %s::timestamptz - created_at)
                WHERE id = %s""",
                (answered, ticket_id),
            )
        # the quick one resolved on Monday at 12:00: 2 business hours, in time
        conn.execute(
            """UPDATE support_tickets SET status = 'resolved', resolved_at = '2026-03-02T12:00:00-05:00',
                resolution_time = 7200 WHERE id = %s""",
            (quick,),
        )
    dashboard = HandlerClient(dashboard_app.lambda_handler, tenant=tenant).get("/api/support/dashboard")
    assert dashboard.status == 200, dashboard.body
    urgent = dashboard.data["slaCompliance"]["urgent"]
    assert urgent["firstResponse"] == {
        "measured": 2,
        "withinTarget": 1,
        "percent": 50.0,
        "averageBusinessSeconds": (30 * 60 + 75 * 60) // 2,
    }
    assert urgent["resolution"] == {
        "measured": 1,
        "withinTarget": 1,
        "percent": 100.0,
        "averageBusinessSeconds": 7200,
    }
    assert dashboard.data["slaCompliance"]["low"]["firstResponse"]["percent"] is None
    # the analytics of those days say the same (days not rolled up: from the rows; the rollup's SLA block)
    dashboards = HandlerClient(dashboard_app.lambda_handler, tenant=tenant)
    summary = dashboards.get("/api/support/analytics/summary", query={"from": "2026-03-01", "to": "2026-03-04"})
    assert summary.status == 200, summary.body
    assert summary.data["slaCompliance"]["urgent"] == urgent
    # reopening takes the resolution away again; a priority change moves the measurement
    assert tickets_api.patch(f"{BASE}/{quick}", {"status": "open"}).status == 200
    assert tickets_api.patch(f"{BASE}/{slow}", {"priority": "high"}).status == 200
    again = HandlerClient(dashboard_app.lambda_handler, tenant=tenant).get("/api/support/dashboard").data
    assert again["slaCompliance"]["urgent"]["resolution"]["measured"] == 0
    assert again["slaCompliance"]["urgent"]["firstResponse"]["measured"] == 1
    # high: 120 min, so 75 business minutes is in time
    assert again["slaCompliance"]["high"]["firstResponse"]["withinTarget"] == 1
    with psycopg.connect(db.owner, row_factory=dict_row) as conn:  # the totals agree with the tickets
        conn.execute(SET_TENANT, (str(tenant),))
        totals = conn.execute(
            "SELECT priority, first_response_measured, resolution_measured FROM ticket_sla_totals"
            " WHERE user_id = %s AND (first_response_measured, resolution_measured) <> (0, 0) ORDER BY priority",
            (tenant,),
        ).fetchall()
    assert [(r["priority"], r["first_response_measured"], r["resolution_measured"]) for r in totals] == [
        ("high", 1, 0),
        ("urgent", 1, 0),
    ]


def test_each_recorded_event_reaches_the_subscribers_once_after_the_commit(
    db: DatabaseUrls, tenant: UUID, tickets_api: HandlerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[sla.SlaEvent] = []

    def broken(event: sla.SlaEvent) -> None:
        raise RuntimeError("a subscriber that fails")

    def listening(event: sla.SlaEvent) -> None:
        with psycopg.connect(db.admin) as conn:  # committed before it is told
            found = conn.execute("SELECT 1 FROM ticket_sla_events WHERE id = %s", (event.id,)).fetchone()
        assert found is not None
        heard.append(event)

    monkeypatch.setattr(sla, "EVENT_HANDLERS", [broken, listening])
    ticket = new_ticket(tickets_api, priority="urgent")
    at = utc(ticket["createdAt"]) + timedelta(minutes=61)
    recorded = sla.sweep(at)
    assert sla.sweep(at) == []
    mine = [e for e in heard if e.tenant_id == tenant]
    assert [(str(e.ticket_id), e.target, e.kind) for e in mine] == [(ticket["id"], "first_response", "breached")]
    assert heard == recorded
