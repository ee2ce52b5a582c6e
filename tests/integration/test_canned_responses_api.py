"""The canned responses function, called in-process with payload 2.0 events, against the real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from local.database import DatabaseUrls
from support.auth import Principal, Role
from support.db.connection import SET_TENANT, Cursor
from support.errors import QuotaExceeded
from support.models.canned import CannedResponseCreate
from support.services import canned_responses
from tests.http_events import HandlerClient

BASE = "/api/support/canned-responses"


def new_response(api: HandlerClient, **overrides: Any) -> dict[str, Any]:
    body = {
        "responseTitle": "Refund policy",
        "responseContent": "Refunds reach your card within 5 to 7 business days.",
        "shortcutKey": f"k{uuid4().hex[:12]}",
        **overrides,
    }
    reply = api.post(BASE, body)
    assert reply.status == 201, reply.body
    return dict(reply.data)


def insert_rows(db: DatabaseUrls, tenant: UUID, count: int, *, usage: int = 0, category: str | None = None) -> None:
    """Many rows at once, as the schema owner would (the superuser connection bypasses RLS)."""
    with psycopg.connect(db.admin) as conn:
        conn.execute(
            """INSERT INTO canned_responses (user_id, response_title, response_content, shortcut_key, category,
                usage_count)
            SELECT %s, 'Bulk ' || n, 'Bulk content ' || n, 'bulk-' || n, %s, %s FROM generate_series(1, %s) n""",
            (tenant, category, usage, count),
        )


def all_pages(api: HandlerClient, query: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        reply = api.get(BASE, query={**query, **({"cursor": cursor} if cursor else {})})
        assert reply.status == 200, reply.body
        rows += reply.data
        cursor = reply.body["nextCursor"]
        if cursor is None:
            return rows
    raise AssertionError("pagination did not end")


@contextmanager
def own_connection(db: DatabaseUrls, tenant_id: UUID, ready: threading.Barrier | None = None) -> Iterator[Cursor]:
    """A tenant transaction on a connection of its own, as each Lambda execution environment has one.
    With `ready`, every thread connects first and then all run their statements at once."""
    with psycopg.connect(db.app, autocommit=True, row_factory=dict_row) as conn:
        if ready is not None:
            ready.wait(timeout=30)
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(SET_TENANT, (str(tenant_id),))
            yield cur


def run_concurrently(count: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            results[i] = work()
        except Exception as exc:  # collected, asserted on by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


class TestCreate:
    def test_create_returns_the_response_in_camel_case(self, canned_api: HandlerClient) -> None:
        created = new_response(canned_api, shortcutKey="Refund_Policy-2", category="billing")

        assert created["userId"] == str(canned_api.tenant)
        assert created["responseTitle"] == "Refund policy"
        assert created["shortcutKey"] == "Refund_Policy-2"  # stored as typed; compared ignoring case
        assert created["category"] == "billing"
        assert created["usageCount"] == 0
        assert created["lastUsedAt"] is None
        assert datetime.fromisoformat(created["createdAt"]).utcoffset() is not None

    @pytest.mark.parametrize(
        "shortcut", ["", "has space", "a" * 33, "slash/key", "dot.key", "émoji", "semi;colon", "new\nline"]
    )
    def test_a_shortcut_key_other_than_1_to_32_letters_digits_dashes_underscores_is_422(
        self, canned_api: HandlerClient, shortcut: str
    ) -> None:
        reply = canned_api.post(BASE, {"responseTitle": "t", "responseContent": "c", "shortcutKey": shortcut})

        assert reply.status == 422
        assert [d["field"] for d in reply.error["details"]] == ["body.shortcutKey"]

    def test_a_shortcut_key_of_32_characters_is_accepted(self, canned_api: HandlerClient) -> None:
        assert new_response(canned_api, shortcutKey="a-_9" * 8)["shortcutKey"] == "a-_9" * 8

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"responseTitle": ""}, "body.responseTitle"),
            ({"responseTitle": "x" * 201}, "body.responseTitle"),
            ({"responseContent": ""}, "body.responseContent"),
            ({"responseContent": "nul \x00 inside"}, "body.responseContent"),
            ({"category": ""}, "body.category"),
            ({"usageCount": 99}, "body.usageCount"),
        ],
    )
    def test_invalid_fields_are_422(self, canned_api: HandlerClient, body: dict[str, Any], field: str) -> None:
        valid = {"responseTitle": "t", "responseContent": "c", "shortcutKey": "ok"}
        reply = canned_api.post(BASE, {**valid, **body})

        assert reply.status == 422
        assert field in [d["field"] for d in reply.error["details"]]

    def test_missing_fields_are_all_reported(self, canned_api: HandlerClient) -> None:
        reply = canned_api.post(BASE, {})
        assert reply.status == 422
        assert {"body.responseTitle", "body.responseContent", "body.shortcutKey"} <= {
            d["field"] for d in reply.error["details"]
        }

    def test_content_up_to_50kb_is_kept_and_over_it_is_413(self, canned_api: HandlerClient) -> None:
        at_limit = "é" * (25 * 1024)  # 51,200 bytes of UTF-8
        assert new_response(canned_api, responseContent=at_limit)["responseContent"] == at_limit

        reply = canned_api.post(BASE, {"responseTitle": "t", "responseContent": at_limit + "x", "shortcutKey": "big"})
        assert reply.status == 413
        assert reply.error["code"] == "payload_too_large"
        assert reply.error["details"][0]["field"] == "body.responseContent"

    def test_a_duplicate_shortcut_key_ignoring_case_is_409(self, canned_api: HandlerClient) -> None:
        new_response(canned_api, shortcutKey="greeting")

        reply = canned_api.post(BASE, {"responseTitle": "t", "responseContent": "c", "shortcutKey": "GREETING"})

        assert reply.status == 409
        assert reply.error["code"] == "conflict"
        assert "GREETING" in reply.error["message"]
        assert reply.error["details"][0]["field"] == "body.shortcutKey"

    def test_another_tenant_may_use_the_same_shortcut_key(self, canned_api: HandlerClient, other_tenant: UUID) -> None:
        new_response(canned_api, shortcutKey="greeting")
        assert new_response(canned_api.as_tenant(other_tenant), shortcutKey="greeting")["shortcutKey"] == "greeting"

    def test_user_id_must_be_the_callers_tenant(self, canned_api: HandlerClient) -> None:
        body = {"responseTitle": "t", "responseContent": "c", "shortcutKey": "mine"}
        assert canned_api.post(BASE, body, query={"userId": str(uuid4())}).status == 403
        assert canned_api.post(BASE, body, query={"userId": str(canned_api.tenant)}).status == 201


class TestTenantCap:
    def test_the_10001st_response_is_a_409_and_a_deletion_makes_room(
        self, canned_api: HandlerClient, db: DatabaseUrls
    ) -> None:
        # Given a tenant one response short of the cap
        insert_rows(db, canned_api.tenant, canned_responses.MAX_CANNED_RESPONSES_PER_TENANT - 1)

        # When it adds the 10,000th and then the 10,001st
        last = new_response(canned_api)
        refused = canned_api.post(BASE, {"responseTitle": "t", "responseContent": "c", "shortcutKey": "one-more"})

        # Then the 10,001st is refused, saying why
        assert refused.status == 409
        assert refused.error["code"] == "quota_exceeded"
        assert "at most 10000 canned responses" in refused.error["message"]
        # and deleting one makes room for it
        assert canned_api.delete(f"{BASE}/{last['id']}").status == 200
        assert new_response(canned_api, shortcutKey="one-more")["shortcutKey"] == "one-more"

    def test_concurrent_creates_cannot_overshoot_the_cap(
        self, db: DatabaseUrls, tenant: UUID, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a tenant 3 short of the cap, and 8 creates racing from 8 execution environments
        insert_rows(db, tenant, canned_responses.MAX_CANNED_RESPONSES_PER_TENANT - 3)
        ready = threading.Barrier(8)
        monkeypatch.setattr(canned_responses, "tenant_transaction", lambda t: own_connection(db, t, ready))
        principal = Principal(tenant_id=tenant, role=Role.AGENT, subject="racer")

        # When they all create at once
        results = run_concurrently(
            8,
            lambda: canned_responses.create_canned_response(
                principal,
                CannedResponseCreate(response_title="t", response_content="c", shortcut_key=f"race-{uuid4().hex[:20]}"),
            ),
        )

        # Then exactly 3 got in, and the others were told the library is full
        assert sum(not isinstance(r, Exception) for r in results) == 3
        assert all(isinstance(r, QuotaExceeded) for r in results if isinstance(r, Exception))
        with psycopg.connect(db.admin) as conn:
            count = conn.execute("SELECT count(*) FROM canned_responses WHERE user_id = %s", (tenant,)).fetchone()
        assert count == (canned_responses.MAX_CANNED_RESPONSES_PER_TENANT,)


class TestList:
    def test_newest_first_with_pages_that_cover_every_row_once(self, canned_api: HandlerClient) -> None:
        created = [new_response(canned_api)["id"] for _ in range(7)]

        first = canned_api.get(BASE, query={"limit": 3})
        rows = all_pages(canned_api, {"limit": 3})

        assert [r["id"] for r in first.data] == created[::-1][:3]
        assert first.body["nextCursor"]
        assert [r["id"] for r in rows] == created[::-1]

    def test_an_empty_tenant_has_an_empty_list(self, canned_api: HandlerClient) -> None:
        reply = canned_api.get(BASE)
        assert reply.status == 200
        assert reply.body == {"success": True, "data": [], "nextCursor": None}

    def test_category_filters(self, canned_api: HandlerClient) -> None:
        billing = new_response(canned_api, category="billing")
        new_response(canned_api, category="shipping")
        new_response(canned_api)

        assert [r["id"] for r in canned_api.get(BASE, query={"category": "billing"}).data] == [billing["id"]]

    @pytest.mark.parametrize(
        ("search", "matches"),
        [
            ("refund", {"refund"}),  # a word of the title
            ("REFUND", {"refund"}),  # ignoring case
            ("fund", {"refund"}),  # a substring, not only whole words
            ("tracking number", {"tracking"}),  # every word must occur, anywhere
            ("number tracking", {"tracking"}),  # in any order
            ("tracking refund", set()),  # all words, not any
            ("card", {"refund"}),  # a word of the content
            ("ship-late", {"tracking"}),  # the shortcut key
            ("Ship-", {"tracking"}),
            ("50%", {"discount"}),  # LIKE's wildcards are literal
            ("%", {"discount"}),
            ("_", {"discount"}),  # the only row with an underscore in it
            ("\\", set()),
            ("nothing-like-this", set()),
        ],
    )
    def test_search_is_a_case_insensitive_substring_match_of_every_word(
        self, canned_api: HandlerClient, search: str, matches: set[str]
    ) -> None:
        rows = {
            "refund": new_response(
                canned_api, responseTitle="Refund policy", responseContent="Back on your card.", shortcutKey="refunds"
            ),
            "tracking": new_response(
                canned_api,
                responseTitle="Where is my parcel",
                responseContent="Your tracking number is in the email.",
                shortcutKey="ship-late",
            ),
            "discount": new_response(
                canned_api, responseTitle="Spring sale", responseContent="Take 50% off.", shortcutKey="sale_50"
            ),
        }

        found = {r["id"] for r in canned_api.get(BASE, query={"search": search}).data}

        assert found == {rows[name]["id"] for name in matches}

    def test_search_with_category_and_pages(self, canned_api: HandlerClient) -> None:
        wanted = [new_response(canned_api, responseTitle=f"Refund {i}", category="billing")["id"] for i in range(5)]
        new_response(canned_api, responseTitle="Refund elsewhere", category="shipping")
        new_response(canned_api, responseTitle="Unrelated", responseContent="Nothing to see", category="billing")

        rows = all_pages(canned_api, {"search": "refund", "category": "billing", "limit": 2})

        assert [r["id"] for r in rows] == wanted[::-1]

    def test_sort_by_usage_is_most_used_first_and_pages_through_ties(
        self, canned_api: HandlerClient, db: DatabaseUrls
    ) -> None:
        # Given 30 responses used 0, 1 or 2 times (ten of each: ties across page boundaries)
        insert_rows(db, canned_api.tenant, 10, usage=0)
        with psycopg.connect(db.admin) as conn:
            conn.execute(
                "UPDATE canned_responses SET shortcut_key = 'u1-' || shortcut_key WHERE user_id = %s",
                (canned_api.tenant,),
            )
        insert_rows(db, canned_api.tenant, 10, usage=1)
        with psycopg.connect(db.admin) as conn:
            conn.execute(
                "UPDATE canned_responses SET shortcut_key = 'u2-' || shortcut_key "
                "WHERE user_id = %s AND shortcut_key LIKE 'bulk-%%'",
                (canned_api.tenant,),
            )
        insert_rows(db, canned_api.tenant, 10, usage=2)

        # When they are listed by usage, 4 at a time
        rows = all_pages(canned_api, {"sort": "usage", "limit": 4})

        # Then every row comes once, ordered by usage and then id, both descending
        keys = [(r["usageCount"], UUID(r["id"])) for r in rows]
        assert len(rows) == 30
        assert keys == sorted(keys, reverse=True)
        assert [r["usageCount"] for r in rows] == [2] * 10 + [1] * 10 + [0] * 10

    def test_a_use_moves_a_response_up_the_usage_order(self, canned_api: HandlerClient) -> None:
        first, second = new_response(canned_api), new_response(canned_api)
        canned_api.post(f"{BASE}/{first['id']}/use")

        listed = canned_api.get(BASE, query={"sort": "usage"}).data
        assert [r["id"] for r in listed] == [first["id"], second["id"]]
        assert [r["id"] for r in canned_api.get(BASE).data] == [second["id"], first["id"]]

    def test_a_cursor_of_one_order_is_refused_by_the_other(self, canned_api: HandlerClient) -> None:
        for _ in range(3):
            new_response(canned_api)
        newest_cursor = canned_api.get(BASE, query={"limit": 1}).body["nextCursor"]
        usage_cursor = canned_api.get(BASE, query={"limit": 1, "sort": "usage"}).body["nextCursor"]

        for query in ({"sort": "usage", "cursor": newest_cursor}, {"cursor": usage_cursor}):
            reply = canned_api.get(BASE, query=query)
            assert reply.status == 422
            assert reply.error["details"][0]["field"] == "query.cursor"

    @pytest.mark.parametrize(
        "query",
        [
            {"limit": 0},
            {"limit": 101},
            {"sort": "oldest"},
            {"cursor": "not-a-cursor"},
            {"cursor": "WzIxNDc0ODM2NDgsIjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJd", "sort": "usage"},
            {"search": "   "},
            {"category": "x" * 101},
        ],
    )
    def test_invalid_queries_are_422(self, canned_api: HandlerClient, query: dict[str, Any]) -> None:
        assert canned_api.get(BASE, query=query).status == 422

    def test_user_id_must_be_the_callers_tenant(self, canned_api: HandlerClient) -> None:
        assert canned_api.get(BASE, query={"userId": str(uuid4())}).status == 403
        assert canned_api.get(BASE, query={"userId": str(canned_api.tenant)}).status == 200


class TestByShortcut:
    def test_lookup_ignores_case(self, canned_api: HandlerClient) -> None:
        created = new_response(canned_api, shortcutKey="Thanks-Bye")

        for key in ("Thanks-Bye", "thanks-bye", "THANKS-BYE"):
            reply = canned_api.get(f"{BASE}/by-shortcut/{key}")
            assert reply.status == 200
            assert reply.data == created

    def test_an_unknown_key_is_404_and_a_malformed_one_422(self, canned_api: HandlerClient) -> None:
        assert canned_api.get(f"{BASE}/by-shortcut/nope").status == 404
        assert canned_api.get(f"{BASE}/by-shortcut/{'a' * 33}").status == 422
        assert canned_api.get(f"{BASE}/by-shortcut/has%20space").status == 422

    def test_the_lookup_is_one_probe_of_the_unique_index_under_rls(
        self, canned_api: HandlerClient, db: DatabaseUrls
    ) -> None:
        # Given a tenant with many responses, and fresh statistics
        insert_rows(db, canned_api.tenant, 2000)
        with psycopg.connect(db.admin, autocommit=True) as conn:
            conn.execute("ANALYZE canned_responses")

        # When the runtime role, under RLS, plans the lookup
        with psycopg.connect(db.app) as conn:
            conn.execute(SET_TENANT, (str(canned_api.tenant),))
            row = conn.execute(
                ("EXPLAIN (FORMAT JSON) " + canned_responses.BY_SHORTCUT).encode(), (canned_api.tenant, "BULK-7")
            ).fetchone()

        # Then it is an index scan of the unique index, with both columns as its condition
        assert row is not None
        scans = [node for node in plan_nodes(row[0][0]["Plan"]) if "Scan" in node["Node Type"]]
        assert [(n["Node Type"], n.get("Index Name")) for n in scans] == [
            ("Index Scan", "canned_responses_shortcut_key")
        ], scans
        assert "shortcut_key_lower" in scans[0]["Index Cond"] and "user_id" in scans[0]["Index Cond"]
        assert "Filter" not in scans[0]


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


class TestUpdate:
    def test_fields_change_and_updated_at_moves(self, canned_api: HandlerClient) -> None:
        created = new_response(canned_api, category="billing")

        reply = canned_api.patch(
            f"{BASE}/{created['id']}",
            {"responseTitle": "New title", "responseContent": "New content", "shortcutKey": "renamed"},
        )

        assert reply.status == 200
        updated = reply.data
        assert (updated["responseTitle"], updated["responseContent"], updated["shortcutKey"]) == (
            "New title",
            "New content",
            "renamed",
        )
        assert updated["category"] == "billing"  # absent: unchanged
        assert updated["updatedAt"] > created["updatedAt"]
        assert canned_api.get(f"{BASE}/by-shortcut/renamed").data == updated
        assert canned_api.get(f"{BASE}/by-shortcut/{created['shortcutKey']}").status == 404

    def test_null_clears_the_category_and_leaves_the_other_fields(self, canned_api: HandlerClient) -> None:
        created = new_response(canned_api, category="billing")

        updated = canned_api.patch(
            f"{BASE}/{created['id']}", {"category": None, "responseTitle": None, "shortcutKey": None}
        ).data

        assert updated["category"] is None
        assert (updated["responseTitle"], updated["shortcutKey"]) == (created["responseTitle"], created["shortcutKey"])

    def test_an_empty_change_returns_the_response_as_it_is(self, canned_api: HandlerClient) -> None:
        created = new_response(canned_api)
        assert canned_api.patch(f"{BASE}/{created['id']}", {}).data == created

    def test_another_responses_shortcut_key_is_409_and_its_own_in_other_case_is_fine(
        self, canned_api: HandlerClient
    ) -> None:
        new_response(canned_api, shortcutKey="taken")
        mine = new_response(canned_api, shortcutKey="mine")

        clash = canned_api.patch(f"{BASE}/{mine['id']}", {"shortcutKey": "TAKEN"})
        assert clash.status == 409
        assert clash.error["details"][0]["field"] == "body.shortcutKey"
        assert canned_api.patch(f"{BASE}/{mine['id']}", {"shortcutKey": "MINE"}).data["shortcutKey"] == "MINE"

    @pytest.mark.parametrize(
        ("body", "status"),
        [
            ({"shortcutKey": "bad key"}, 422),
            ({"responseTitle": ""}, 422),
            ({"responseContent": "x" * 51201}, 413),
            ({"usageCount": 0}, 422),
        ],
    )
    def test_invalid_changes(self, canned_api: HandlerClient, body: dict[str, Any], status: int) -> None:
        created = new_response(canned_api)
        assert canned_api.patch(f"{BASE}/{created['id']}", body).status == status

    def test_unknown_and_malformed_ids(self, canned_api: HandlerClient) -> None:
        assert canned_api.patch(f"{BASE}/{uuid4()}", {"responseTitle": "x"}).status == 404
        assert canned_api.patch(f"{BASE}/{uuid4()}", {}).status == 404
        assert canned_api.patch(f"{BASE}/not-a-uuid", {"responseTitle": "x"}).status == 422


class TestDelete:
    def test_delete_answers_200_with_the_deleted_response_then_it_is_gone(self, canned_api: HandlerClient) -> None:
        created = new_response(canned_api, shortcutKey="bye")

        reply = canned_api.delete(f"{BASE}/{created['id']}")

        assert reply.status == 200
        assert reply.data == created
        assert canned_api.delete(f"{BASE}/{created['id']}").status == 404
        assert canned_api.get(f"{BASE}/by-shortcut/bye").status == 404
        assert canned_api.get(BASE).data == []
        assert new_response(canned_api, shortcutKey="BYE")["shortcutKey"] == "BYE"  # the key is free again

    def test_unknown_and_malformed_ids(self, canned_api: HandlerClient) -> None:
        assert canned_api.delete(f"{BASE}/{uuid4()}").status == 404
        assert canned_api.delete(f"{BASE}/not-a-uuid").status == 422


class TestUse:
    def test_a_use_counts_and_stamps_without_touching_updated_at(self, canned_api: HandlerClient) -> None:
        created = new_response(canned_api)

        first = canned_api.post(f"{BASE}/{created['id']}/use")
        second = canned_api.post(f"{BASE}/{created['id']}/use")

        assert first.status == 200
        assert first.data["usageCount"] == 1
        assert second.data["usageCount"] == 2
        assert first.data["lastUsedAt"] is not None
        assert second.data["lastUsedAt"] >= first.data["lastUsedAt"]
        assert second.data["updatedAt"] == created["updatedAt"]  # a use is not an edit

    def test_unknown_and_malformed_ids(self, canned_api: HandlerClient) -> None:
        assert canned_api.post(f"{BASE}/{uuid4()}/use").status == 404
        assert canned_api.post(f"{BASE}/not-a-uuid/use").status == 422

    def test_50_concurrent_uses_add_exactly_50(
        self, canned_api: HandlerClient, db: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a response, and 50 execution environments, each with its own connection
        created = new_response(canned_api)
        ready = threading.Barrier(50)
        monkeypatch.setattr(canned_responses, "tenant_transaction", lambda t: own_connection(db, t, ready))
        principal = Principal(tenant_id=canned_api.tenant, role=Role.AGENT, subject="agent")

        # When all 50 use it at the same moment
        results = run_concurrently(
            50, lambda: canned_responses.use_canned_response(principal, UUID(created["id"])).usage_count
        )

        # Then each use saw a distinct count, and the total is exactly 50 more
        assert sorted(results) == list(range(1, 51)), results
        monkeypatch.undo()
        assert canned_api.get(BASE).data[0]["usageCount"] == 50


class TestRolesAndTenants:
    def test_an_agent_may_do_everything_an_admin_may(self, canned_api: HandlerClient) -> None:
        agent = canned_api.as_tenant(canned_api.tenant, role="agent")

        created = new_response(agent, shortcutKey="agent-made")
        assert agent.get(BASE).status == 200
        assert agent.get(f"{BASE}/by-shortcut/agent-made").status == 200
        assert agent.patch(f"{BASE}/{created['id']}", {"category": "x"}).status == 200
        assert agent.post(f"{BASE}/{created['id']}/use").status == 200
        assert agent.delete(f"{BASE}/{created['id']}").status == 200

    def test_another_tenants_responses_are_404_everywhere_and_never_listed(
        self, canned_api: HandlerClient, other_tenant: UUID
    ) -> None:
        mine = new_response(canned_api, shortcutKey="secret", responseTitle="Secret merger reply")
        other = canned_api.as_tenant(other_tenant)

        replies = {
            "by shortcut": other.get(f"{BASE}/by-shortcut/secret"),
            "patch": other.patch(f"{BASE}/{mine['id']}", {"responseTitle": "hijacked"}),
            "empty patch": other.patch(f"{BASE}/{mine['id']}", {}),
            "use": other.post(f"{BASE}/{mine['id']}/use"),
            "delete": other.delete(f"{BASE}/{mine['id']}"),
        }

        assert {name: r.status for name, r in replies.items()} == dict.fromkeys(replies, 404)
        assert other.get(BASE, query={"search": "secret"}).data == []
        assert canned_api.get(f"{BASE}/by-shortcut/secret").data == mine  # unchanged, unused
