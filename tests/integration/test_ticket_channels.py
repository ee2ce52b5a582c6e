"""Issue 17, part 2: a ticket's channel and reference, the backfill of references, and phone calls (sql/0025), through
the tickets function in-process against the real PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.db.references import backfill_references
from support.models.tickets import TicketCreate
from support.services import tickets
from tests import recount
from tests.http_events import HandlerClient
from tests.integration.test_chat_concurrency import connection_per_thread, run_together
from tests.integration.test_tickets_api import BASE, new_agent, new_ticket

__all__ = ["connection_per_thread"]  # a fixture, used by name below

CHANNELS = ("api", "email", "web_form", "chat", "phone", "social")


def _owner(db: DatabaseUrls, tenant: UUID) -> psycopg.Connection[Any]:
    conn = psycopg.connect(db.owner, row_factory=dict_row)
    conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
    return conn


def _references(db: DatabaseUrls, tenant: UUID) -> list[int | None]:
    """The tenant's references in the order the tickets were created."""
    with _owner(db, tenant) as conn:
        rows = conn.execute(
            "SELECT reference FROM support_tickets WHERE user_id = %s ORDER BY created_at, id", (tenant,)
        ).fetchall()
    return [r["reference"] for r in rows]


class TestChannel:
    def test_staff_default_to_api_and_may_say_phone_or_email(self, tickets_api: HandlerClient) -> None:
        assert new_ticket(tickets_api)["channel"] == "api"
        assert new_ticket(tickets_api, channel="phone")["channel"] == "phone"
        assert new_ticket(tickets_api, channel="email")["channel"] == "email"

    @pytest.mark.parametrize("channel", ["chat", "web_form", "social", "fax", ""])
    def test_the_other_channels_are_not_the_clients_to_claim(self, tickets_api: HandlerClient, channel: str) -> None:
        body = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Hi", "channel": channel}
        reply = tickets_api.post(BASE, body)
        assert reply.status == 422, reply.body
        assert any("channel" in str(d.get("field", "")) for d in reply.error["details"])

    def test_the_channel_never_changes(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api, channel="phone")
        assert tickets_api.patch(f"{BASE}/{ticket['id']}", {"channel": "email"}).status == 422
        assert tickets_api.get(f"{BASE}/{ticket['id']}").data["channel"] == "phone"

    def test_the_list_filters_by_channel_and_pages(self, tickets_api: HandlerClient) -> None:
        phone = [new_ticket(tickets_api, channel="phone", subject=f"Call {n}")["id"] for n in range(3)]
        new_ticket(tickets_api, channel="email", subject="Call by email")
        new_ticket(tickets_api)

        first = tickets_api.get(BASE, query={"channel": "phone", "limit": 2})
        assert first.status == 200
        second = tickets_api.get(BASE, query={"channel": "phone", "limit": 2, "cursor": first.body["nextCursor"]})
        seen = [t["id"] for t in first.data + second.data]
        assert seen == list(reversed(phone)) and second.body["nextCursor"] is None
        assert {t["channel"] for t in first.data + second.data} == {"phone"}

        # with a text search too: the search applies the channel before it counts a page
        found = tickets_api.get(BASE, query={"channel": "email", "search": "call"}).data
        assert [t["subject"] for t in found] == ["Call by email"]

        assert tickets_api.get(BASE, query={"channel": "fax"}).status == 422

    def test_the_channel_filter_has_its_index_in_list_order(self, db: DatabaseUrls, tenant: UUID) -> None:
        with _owner(db, tenant) as conn:
            conn.execute("SET enable_seqscan = off")
            conn.execute("SET enable_bitmapscan = off")
            plan = conn.execute(
                "EXPLAIN SELECT id FROM support_tickets WHERE user_id = %s AND channel = 'phone'"
                " ORDER BY created_at DESC, id DESC LIMIT 20",
                (tenant,),
            ).fetchall()
            [definition] = (
                conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'support_tickets_channel_idx'")
                .fetchone()
                .values()
            )
        # the index leads with the filter's columns and then the list's order, so a channel's page is read in order;
        # the planner picks it or the list's own index by the table's statistics (which the suite's other tests
        # move), and either way no sort
        assert definition.endswith("(user_id, channel, created_at DESC, id DESC)")
        text = "\n".join(row["QUERY PLAN"] for row in plan)
        assert "Sort" not in text


class TestReference:
    def test_a_tenants_references_start_at_1001_and_ascend(
        self, tickets_api: HandlerClient, other_tenant: UUID
    ) -> None:
        made = [new_ticket(tickets_api) for _ in range(3)]
        assert [t["reference"] for t in made] == ["#1001", "#1002", "#1003"]
        # every answer shows it: the read, the list, an update, a close
        one = made[1]
        assert tickets_api.get(f"{BASE}/{one['id']}").data["reference"] == "#1002"
        assert [t["reference"] for t in tickets_api.get(BASE).data] == ["#1003", "#1002", "#1001"]
        assert tickets_api.patch(f"{BASE}/{one['id']}", {"priority": "high"}).data["reference"] == "#1002"
        assert tickets_api.post(f"{BASE}/{one['id']}/close").data["reference"] == "#1002"
        # another tenant counts on its own
        assert new_ticket(tickets_api.as_tenant(other_tenant))["reference"] == "#1001"

    def test_a_deleted_tickets_reference_is_not_given_again(
        self, db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID
    ) -> None:
        new_ticket(tickets_api)
        last = new_ticket(tickets_api)
        with _owner(db, tenant) as conn:
            conn.execute("DELETE FROM support_tickets WHERE id = %s", (last["id"],))
        assert new_ticket(tickets_api)["reference"] == "#1003"

    def test_the_api_cannot_choose_a_reference(self, tickets_api: HandlerClient) -> None:
        body = {"customerName": "Ada", "customerEmail": "ada@example.com", "subject": "Hi", "reference": 7}
        assert tickets_api.post(BASE, body).status == 422
        ticket = new_ticket(tickets_api)
        assert tickets_api.patch(f"{BASE}/{ticket['id']}", {"reference": "#9"}).status == 422

    def test_concurrent_creates_get_distinct_consecutive_references(
        self, tenant: UUID, connection_per_thread: None
    ) -> None:
        principal = Principal(tenant_id=tenant, role=Role.ADMIN, subject="admin")
        body = TicketCreate.model_validate({"customerName": "Ada", "customerEmail": "a@example.com", "subject": "S"})

        def five() -> list[str | None]:
            return [tickets.create_ticket(principal, body).reference for _ in range(5)]

        results = run_together([five] * 8)
        got = [reference for batch in results for reference in batch]
        assert sorted(got, key=lambda r: int(str(r)[1:])) == [f"#{n}" for n in range(1001, 1041)]

    def test_a_bulk_insert_numbers_every_row_and_moves_the_counter_once(
        self, db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID
    ) -> None:
        new_ticket(tickets_api)
        with _owner(db, tenant) as conn:
            conn.execute(
                "INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)"
                " SELECT %s, 'C', 'c@example.com', 'bulk ' || n FROM generate_series(1, 500) n",
                (tenant,),
            )
            counter = conn.execute(
                "SELECT last_reference FROM ticket_reference_counters WHERE user_id = %s", (tenant,)
            ).fetchone()
        assert sorted(r or 0 for r in _references(db, tenant)) == list(range(1001, 1502))
        assert counter == {"last_reference": 1501}
        assert new_ticket(tickets_api)["reference"] == "#1502"

    def test_search_by_reference_finds_that_ticket_only(self, tickets_api: HandlerClient) -> None:
        wanted = new_ticket(tickets_api, subject="Refund please")
        new_ticket(tickets_api, subject="Refund 1001 please", description="about order 1001")
        new_ticket(tickets_api, subject="Order 4242 lost")

        for text in ("#1001", "1001", " # 1001 "):
            found = tickets_api.get(BASE, query={"search": text}).data
            assert [t["id"] for t in found] == [wanted["id"]], text
        # `#` always means a reference: none has it, none found
        assert tickets_api.get(BASE, query={"search": "#4242"}).data == []
        # a bare number that is no ticket's reference is searched as text
        assert [t["subject"] for t in tickets_api.get(BASE, query={"search": "4242"}).data] == ["Order 4242 lost"]
        # with other filters: the reference's ticket only if it matches them
        assert tickets_api.get(BASE, query={"search": "#1001", "status": "closed"}).data == []


class TestBackfill:
    """A database upgraded to sql/0025 with tickets already there: they are numbered after the migration, in
    batches, in the order they were created, while new tickets are numbered above the range reserved for them."""

    @staticmethod
    def _as_before_references(db: DatabaseUrls, tenant: UUID) -> int:
        """Put the tenant's tickets back as sql/0025 finds them: no reference, their range reserved, a backfill row.
        Returns the last reference reserved."""
        with psycopg.connect(db.admin) as conn:  # the superuser: as the migration's owner with RLS lifted
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))  # for the triggers
            conn.execute("UPDATE support_tickets SET reference = NULL WHERE user_id = %s", (tenant,))
            row = conn.execute(
                "UPDATE ticket_reference_counters SET last_reference = 1000 + (SELECT count(*) FROM support_tickets"
                " WHERE user_id = %s) WHERE user_id = %s RETURNING last_reference",
                (tenant, tenant),
            ).fetchone()
            assert row is not None
            conn.execute(
                "INSERT INTO ticket_reference_backfill (user_id, next_reference, ceiling) VALUES (%s, 1001, %s)",
                (tenant, row[0]),
            )
        return int(row[0])

    def test_old_tickets_are_numbered_in_creation_order_and_nothing_else_moves(
        self, db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID
    ) -> None:
        # Given a tenant with tickets in several states, assigned and resolved, made before references
        agent = new_agent(tickets_api)
        made = [new_ticket(tickets_api, category=("billing" if n % 2 else None)) for n in range(7)]
        tickets_api.post(f"{BASE}/{made[0]['id']}/assign", {"agentId": agent["id"]})
        tickets_api.patch(f"{BASE}/{made[0]['id']}", {"status": "resolved"})
        ceiling = self._as_before_references(db, tenant)
        assert ceiling == 1007
        with _owner(db, tenant) as conn:
            before = conn.execute(
                "SELECT id, updated_at FROM support_tickets WHERE user_id = %s ORDER BY id", (tenant,)
            ).fetchall()
        totals = recount.stored_ticket_totals(db, tenant)
        agent_row = _agent(db, tenant, agent["id"])

        # When a ticket is created before the backfill runs, and the backfill runs in batches of 3
        newer = new_ticket(tickets_api)
        with psycopg.connect(db.owner, autocommit=True) as conn:
            numbered, left = backfill_references(conn, batch=3, log=lambda _m: None)

        # Then the new ticket is above the reserved range, the old ones are #1001..#1007 in creation order
        assert newer["reference"] == "#1008"
        assert (numbered, left) == (7, False)
        assert _references(db, tenant) == list(range(1001, 1009))
        # and numbering changed nothing else: updated_at, the running totals, the agent's figures, the recount
        with _owner(db, tenant) as conn:
            after = conn.execute(
                "SELECT id, updated_at FROM support_tickets WHERE user_id = %s AND id <> %s ORDER BY id",
                (tenant, newer["id"]),
            ).fetchall()
            assert conn.execute("SELECT count(*) AS n FROM ticket_reference_backfill").fetchone() == {"n": 0}
        assert after == before
        expected_totals = dict(totals)
        expected_totals[("open", "medium", None, "api")] = tuple(
            a + b for a, b in zip(totals[("open", "medium", None, "api")], (1, 0, 0, 0, 0), strict=True)
        )
        assert recount.stored_ticket_totals(db, tenant) == expected_totals == recount.recount_ticket_totals(db, tenant)
        assert _agent(db, tenant, agent["id"]) == agent_row

    def test_a_ticket_created_while_a_batch_is_open_is_not_held_and_gets_its_own_reference(
        self, db: DatabaseUrls, tickets_api: HandlerClient, tenant: UUID, connection_per_thread: None
    ) -> None:
        for _ in range(4):
            new_ticket(tickets_api)
        self._as_before_references(db, tenant)

        # Given a batch of the backfill that has numbered the old tickets but not committed yet
        with psycopg.connect(db.owner) as batch:
            assert batch.execute("SELECT public.backfill_ticket_references(10)").fetchone() == (4,)
            # When a ticket is created meanwhile (in another thread, so a wait would show as a timeout)
            created: list[dict[str, Any]] = []
            worker = threading.Thread(target=lambda: created.append(new_ticket(tickets_api)))
            worker.start()
            worker.join(timeout=10)
            assert not worker.is_alive(), "the create waited for the backfill's batch"
            batch.commit()

        # Then it got the next reference above the range, and every reference is distinct
        assert created[0]["reference"] == "#1005"
        assert _references(db, tenant) == [1001, 1002, 1003, 1004, 1005]

    def test_the_provisioning_report_counts_what_was_numbered(
        self, db: DatabaseUrls, tickets_api: HandlerClient
    ) -> None:
        from support.db.provisioning import ProvisioningReport

        report = replace(ProvisioningReport(), references_numbered=12, references_left=True)
        assert report.changed and "numbered 12 old tickets (more left for the next run)" in report.summary()


def _agent(db: DatabaseUrls, tenant: UUID, agent_id: str) -> dict[str, Any]:
    with _owner(db, tenant) as conn:
        row = conn.execute("SELECT * FROM support_agents WHERE id = %s", (agent_id,)).fetchone()
    assert row is not None
    return dict(row)


class TestCalls:
    @pytest.fixture
    def agent_api(self, tickets_api: HandlerClient) -> tuple[HandlerClient, dict[str, Any]]:
        agent = new_agent(tickets_api, agentName="Grace Hopper")
        return replace(tickets_api, role="agent", agent_id=UUID(agent["id"])), agent

    def test_a_call_is_an_internal_entry_of_its_own_kind_in_thread_order(
        self, agent_api: tuple[HandlerClient, dict[str, Any]]
    ) -> None:
        api, agent = agent_api
        ticket = new_ticket(api)
        path = f"{BASE}/{ticket['id']}"
        message = {"senderType": "agent", "senderName": "Grace", "message": "We'll call you."}
        assert api.post(f"{path}/conversations", message).status == 201
        call = {"direction": "outbound", "callerNumber": "+1 555 0100", "durationSeconds": 312, "notes": "Sent a label"}
        reply = api.post(f"{path}/calls", call)
        assert reply.status == 201, reply.body
        logged = reply.data
        assert logged["kind"] == "call" and logged["isInternal"] is True
        assert logged["senderType"] == "agent" and logged["senderName"] == "Grace Hopper"
        assert logged["message"] == "Sent a label"
        assert logged["call"] == {
            "direction": "outbound",
            "callerNumber": "+1 555 0100",
            "durationSeconds": 312,
            "agentId": agent["id"],
        }
        # without notes: a line that says what the call was
        quiet = api.post(f"{path}/calls", {"direction": "inbound", "durationSeconds": 65}).data
        assert quiet["message"] == "Inbound call, 1:05" and quiet["call"]["callerNumber"] is None

        thread = api.get(f"{path}/conversations").data
        assert [(c["kind"], c["call"] is not None) for c in thread] == [
            ("message", False),
            ("call", True),
            ("call", True),
        ]
        assert [c["id"] for c in thread[1:]] == [logged["id"], quiet["id"]]

    def test_a_phone_ticket_logs_its_first_call_in_the_same_transaction(
        self, db: DatabaseUrls, agent_api: tuple[HandlerClient, dict[str, Any]]
    ) -> None:
        api, agent = agent_api
        call = {"direction": "inbound", "callerNumber": "+44 20 7946 0000", "durationSeconds": 240}
        ticket = new_ticket(api, channel="phone", call=call)
        assert ticket["channel"] == "phone"
        thread = api.get(f"{BASE}/{ticket['id']}/conversations").data
        assert len(thread) == 1 and thread[0]["call"]["agentId"] == agent["id"]
        assert thread[0]["call"]["callerNumber"] == "+44 20 7946 0000"
        # a call is no reply: the first response time is the public messages' to set
        assert api.get(f"{BASE}/{ticket['id']}").data["firstResponseTime"] is None

        # a call the database refuses takes the ticket with it: nothing of either is kept
        count = len(api.get(BASE, query={"limit": 100}).data)
        with psycopg.connect(db.admin) as conn:
            conn.execute(
                "ALTER TABLE ticket_conversations ADD CONSTRAINT test_no_long_calls"
                " CHECK (call_duration_seconds < 1000) NOT VALID"
            )
        try:
            body = {
                "customerName": "Ada",
                "customerEmail": "a@example.com",
                "subject": "Long call",
                "channel": "phone",
                "call": {"direction": "inbound", "durationSeconds": 5000},
            }
            assert api.post(BASE, body).status != 201
        finally:
            with psycopg.connect(db.admin) as conn:
                conn.execute("ALTER TABLE ticket_conversations DROP CONSTRAINT test_no_long_calls")
        assert len(api.get(BASE, query={"limit": 100}).data) == count

    def test_a_call_needs_a_phone_ticket_to_come_with(self, tickets_api: HandlerClient) -> None:
        body = {
            "customerName": "Ada",
            "customerEmail": "a@example.com",
            "subject": "S",
            "call": {"direction": "inbound", "durationSeconds": 5},
        }
        reply = tickets_api.post(BASE, body)
        assert reply.status == 422

    @pytest.mark.parametrize(
        "call",
        [
            {"direction": "sideways", "durationSeconds": 5},
            {"direction": "inbound"},
            {"direction": "inbound", "durationSeconds": -1},
            {"direction": "inbound", "durationSeconds": 86_401},
            {"direction": "inbound", "durationSeconds": 5, "callerNumber": "call me"},
            {"direction": "inbound", "durationSeconds": 5, "notes": "   "},
            {"direction": "inbound", "durationSeconds": 5, "agentId": str(uuid4())},
        ],
    )
    def test_bad_input_is_422(self, tickets_api: HandlerClient, call: dict[str, Any]) -> None:
        ticket = new_ticket(tickets_api)
        assert tickets_api.post(f"{BASE}/{ticket['id']}/calls", call).status == 422

    def test_another_tenants_ticket_is_404_and_a_closed_one_409(
        self, tickets_api: HandlerClient, other_tenant: UUID
    ) -> None:
        call = {"direction": "inbound", "durationSeconds": 5}
        foreign = new_ticket(tickets_api.as_tenant(other_tenant))
        assert tickets_api.post(f"{BASE}/{foreign['id']}/calls", call).status == 404
        assert tickets_api.post(f"{BASE}/{uuid4()}/calls", call).status == 404
        assert tickets_api.as_tenant(other_tenant).get(f"{BASE}/{foreign['id']}/conversations").data == []
        mine = new_ticket(tickets_api)
        tickets_api.post(f"{BASE}/{mine['id']}/close")
        assert tickets_api.post(f"{BASE}/{mine['id']}/calls", call).status == 409

    def test_an_admin_without_an_agent_logs_as_admin(self, tickets_api: HandlerClient) -> None:
        ticket = new_ticket(tickets_api)
        logged = tickets_api.post(f"{BASE}/{ticket['id']}/calls", {"direction": "inbound", "durationSeconds": 5}).data
        assert logged["senderName"] == "Admin" and logged["call"]["agentId"] is None
