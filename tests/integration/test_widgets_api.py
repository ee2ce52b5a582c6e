"""Widget keys (admins) and the public visitor session route the chat widget calls from a merchant's page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import jwt
import psycopg
import pytest

from local.database import DatabaseUrls
from local.gateway import LambdaContext, build_http_event
from support import visitors
from support.services import widgets
from tests.http_events import HandlerClient, Reply, route_key

BASE = "/api/support/widgets"
SESSION = "/api/support/widget/session"
SHOP = "https://shop.example"


@pytest.fixture
def widgets_api(db: DatabaseUrls, tenant: UUID) -> HandlerClient:
    from functions.widgets import app

    return HandlerClient(app.lambda_handler, tenant=tenant)


def new_widget(api: HandlerClient, origins: list[str] | None = None, name: str = "Shop") -> dict[str, Any]:
    reply = api.post(BASE, {"name": name, "allowedOrigins": origins or [SHOP]})
    assert reply.status == 201, reply.body
    return dict(reply.data)


def visitor_session(body: Any, origin: str | None = SHOP) -> Reply:
    """The public route as a browser on `origin` calls it: no Authorization, so no authorizer context."""
    from functions.widgets import app

    headers = [("content-type", "application/json")] + ([("origin", origin)] if origin else [])
    event = build_http_event(
        route_key=route_key("POST", SESSION),
        method="POST",
        raw_path=SESSION,
        headers=headers,
        body=json.dumps(body).encode(),
        claims=None,
    )
    result = app.lambda_handler(
        event, LambdaContext(function_name="WidgetsFunction", memory_limit_in_mb=512, timeout_seconds=10)
    )
    return Reply(status=result["statusCode"], body=json.loads(result["body"]), headers=result.get("headers") or {})


class TestWidgetKeys:
    def test_an_admin_creates_a_key_with_normalised_origins(self, widgets_api: HandlerClient) -> None:
        widget = new_widget(
            widgets_api, ["https://Shop.Example/", "https://shop.example:8443", "http://localhost:5173"]
        )

        assert widget["widgetKey"].startswith("wk_") and len(widget["widgetKey"]) == 35
        assert widget["allowedOrigins"] == [
            "https://shop.example",
            "https://shop.example:8443",
            "http://localhost:5173",
        ]
        assert widget["name"] == "Shop"
        assert widget["revokedAt"] is None
        assert set(widget) == {"widgetKey", "name", "allowedOrigins", "createdAt", "revokedAt"}

    @pytest.mark.parametrize(
        "origin",
        [
            "http://shop.example",  # plain http off localhost
            "https://shop.example/checkout",  # a path
            "https://user:pw@shop.example",
            "https://shop.example?x=1",
            "javascript:alert(1)",
            "ftp://shop.example",
            "https://",
            "https://shop.example:99999",
            "null",
        ],
    )
    def test_origins_that_are_not_origins_are_refused(self, widgets_api: HandlerClient, origin: str) -> None:
        reply = widgets_api.post(BASE, {"name": "Shop", "allowedOrigins": [origin]})

        assert reply.status == 422, reply.body
        assert reply.error["details"][0]["field"].startswith("body.allowedOrigins")

    def test_duplicate_and_empty_origin_lists_are_refused(self, widgets_api: HandlerClient) -> None:
        assert widgets_api.post(BASE, {"name": "Shop", "allowedOrigins": []}).status == 422
        assert widgets_api.post(BASE, {"name": "Shop", "allowedOrigins": [SHOP, "https://SHOP.example"]}).status == 422

    def test_only_admins_manage_keys(self, widgets_api: HandlerClient) -> None:
        widget = new_widget(widgets_api)
        agent = widgets_api.as_tenant(widgets_api.tenant, role="agent")

        assert agent.post(BASE, {"name": "x", "allowedOrigins": [SHOP]}).status == 403
        assert agent.delete(f"{BASE}/{widget['widgetKey']}").status == 403
        assert agent.get(BASE).status == 200  # reading the list is fine

    def test_list_is_newest_first_paginated_and_per_tenant(
        self, widgets_api: HandlerClient, other_tenant: UUID
    ) -> None:
        made = [new_widget(widgets_api, name=f"Shop {n}")["widgetKey"] for n in range(3)]
        new_widget(widgets_api.as_tenant(other_tenant))

        first = widgets_api.get(BASE, query={"limit": 2})
        second = widgets_api.get(BASE, query={"limit": 2, "cursor": first.body["nextCursor"]})

        assert [w["widgetKey"] for w in first.data + second.data] == made[::-1]
        assert second.body["nextCursor"] is None

    def test_revoking_is_idempotent_and_another_tenants_key_is_unknown(
        self, widgets_api: HandlerClient, other_tenant: UUID
    ) -> None:
        widget = new_widget(widgets_api)

        foreign = widgets_api.as_tenant(other_tenant).delete(f"{BASE}/{widget['widgetKey']}")
        revoked = widgets_api.delete(f"{BASE}/{widget['widgetKey']}")
        again = widgets_api.delete(f"{BASE}/{widget['widgetKey']}")

        assert foreign.status == 404
        assert revoked.status == 200 and revoked.data["revokedAt"] is not None
        assert again.data["revokedAt"] == revoked.data["revokedAt"]
        assert widgets_api.delete(f"{BASE}/wk_not-a-real-key-{'x' * 20}").status == 404
        assert widgets_api.delete(f"{BASE}/not-a-key").status == 422

    def test_the_101st_key_is_refused(self, widgets_api: HandlerClient, db: DatabaseUrls) -> None:
        with psycopg.connect(db.owner) as conn:
            conn.execute(
                "INSERT INTO widget_keys (user_id, widget_key, name, allowed_origins)"
                " SELECT %s, 'wk_bulk_' || n || repeat('x', 20), 'bulk', ARRAY['https://a.example']"
                " FROM generate_series(1, %s) n",
                (widgets_api.tenant, widgets.MAX_WIDGET_KEYS_PER_TENANT - 1),
            )
        new_widget(widgets_api)
        refused = widgets_api.post(BASE, {"name": "one more", "allowedOrigins": [SHOP]})

        assert (refused.status, refused.error["code"]) == (409, "quota_exceeded")


class TestEditingOrigins:
    def test_an_admin_replaces_a_keys_origins_and_the_new_page_is_admitted(self, widgets_api: HandlerClient) -> None:
        widget = new_widget(widgets_api, ["http://localhost:8080"])
        moved = "http://localhost:5513"
        assert visitor_session({"widgetKey": widget["widgetKey"]}, origin=moved).status == 403

        reply = widgets_api.patch(f"{BASE}/{widget['widgetKey']}", {"allowedOrigins": [SHOP, "http://LOCALHOST:5513/"]})

        assert reply.status == 200, reply.body
        assert reply.data["allowedOrigins"] == [SHOP, moved]  # normalised as at creation
        assert (reply.data["widgetKey"], reply.data["name"]) == (widget["widgetKey"], widget["name"])
        assert visitor_session({"widgetKey": widget["widgetKey"]}, origin=moved).status == 201
        assert visitor_session({"widgetKey": widget["widgetKey"]}, origin="http://localhost:8080").status == 403
        assert widgets_api.get(BASE).data[0]["allowedOrigins"] == [SHOP, moved]

    @pytest.mark.parametrize(
        "body",
        [
            {"allowedOrigins": []},
            {"allowedOrigins": ["http://shop.example"]},
            {"allowedOrigins": [SHOP, "https://SHOP.example/"]},
            {"allowedOrigins": [f"https://shop{n}.example" for n in range(51)]},
            {"allowedOrigins": [SHOP], "name": "renamed"},
            {},
        ],
    )
    def test_origins_are_validated_as_at_creation(self, widgets_api: HandlerClient, body: dict[str, Any]) -> None:
        widget = new_widget(widgets_api)

        reply = widgets_api.patch(f"{BASE}/{widget['widgetKey']}", body)

        assert (reply.status, reply.error["code"]) == (422, "validation_error"), reply.body
        assert widgets_api.get(BASE).data[0]["allowedOrigins"] == [SHOP]

    def test_another_tenants_key_is_unknown_and_a_revoked_key_is_a_conflict(
        self, widgets_api: HandlerClient, other_tenant: UUID
    ) -> None:
        widget = new_widget(widgets_api)
        path = f"{BASE}/{widget['widgetKey']}"
        body = {"allowedOrigins": ["https://elsewhere.example"]}

        foreign = widgets_api.as_tenant(other_tenant).patch(path, body)
        unknown = widgets_api.patch(f"{BASE}/wk_not-a-real-key-{'x' * 20}", body)
        agent = widgets_api.as_tenant(widgets_api.tenant, role="agent").patch(path, body)
        widgets_api.delete(path)
        revoked = widgets_api.patch(path, body)

        assert (foreign.status, unknown.status, agent.status, revoked.status) == (404, 404, 403, 409)
        assert revoked.error["code"] == "conflict"
        assert widgets_api.patch(f"{BASE}/not-a-key", body).status == 422
        assert widgets_api.get(BASE).data[0]["allowedOrigins"] == [SHOP]


class TestVisitorSession:
    def test_a_page_on_an_allowed_origin_gets_a_visitor_and_its_tokens(self, widgets_api: HandlerClient) -> None:
        widget = new_widget(widgets_api)

        reply = visitor_session({"widgetKey": widget["widgetKey"]})

        assert reply.status == 201, reply.body
        session = reply.data
        connect = visitors.verify_connect_token(session["connectToken"])
        assert connect is not None
        assert (connect.tenant_id, connect.widget_key, connect.visitor_id) == (
            widgets_api.tenant,
            widget["widgetKey"],
            session["visitorId"],
        )
        expires = datetime.fromisoformat(session["expiresAt"])
        assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)
        resume_expires = datetime.fromisoformat(session["resumeExpiresAt"])
        assert timedelta(days=29) < resume_expires - datetime.now(UTC) <= timedelta(days=30)
        # each token is only good for its own purpose
        assert visitors.verify_resume_token(session["connectToken"]) is None
        assert visitors.verify_connect_token(session["resumeToken"]) is None

    @pytest.mark.parametrize("origin", [None, "https://evil.example", "https://shop.example.evil.example", "null"])
    def test_an_origin_the_key_does_not_list_is_refused(self, widgets_api: HandlerClient, origin: str | None) -> None:
        widget = new_widget(widgets_api)

        reply = visitor_session({"widgetKey": widget["widgetKey"]}, origin=origin)

        assert (reply.status, reply.error["code"]) == (403, "forbidden")
        assert "connectToken" not in json.dumps(reply.body)

    def test_unknown_and_revoked_keys_are_refused_alike(self, widgets_api: HandlerClient) -> None:
        widget = new_widget(widgets_api)
        widgets_api.delete(f"{BASE}/{widget['widgetKey']}")

        revoked = visitor_session({"widgetKey": widget["widgetKey"]})
        unknown = visitor_session({"widgetKey": "wk_" + "u" * 32})

        assert revoked.status == unknown.status == 403
        assert revoked.error["message"] == unknown.error["message"]

    def test_a_resume_token_keeps_the_visitor_and_anything_else_starts_a_new_one(
        self, widgets_api: HandlerClient, other_tenant: UUID
    ) -> None:
        widget = new_widget(widgets_api)
        other_widget = new_widget(widgets_api, name="Another shop")
        first = visitor_session({"widgetKey": widget["widgetKey"]}).data
        foreign = visitor_session({"widgetKey": other_widget["widgetKey"]}).data["resumeToken"]
        expired = jwt.encode(
            {
                "iss": visitors.ISSUER,
                "aud": visitors.RESUME_AUDIENCE,
                "sub": first["visitorId"],
                "tenant_id": str(widgets_api.tenant),
                "widget_key": widget["widgetKey"],
                "iat": int((datetime.now(UTC) - timedelta(days=31)).timestamp()),
                "exp": int((datetime.now(UTC) - timedelta(days=1)).timestamp()),
            },
            visitors.signing_key(),
            algorithm="HS256",
        )
        head, payload, signature = first["resumeToken"].split(".")
        tampered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
        forged = jwt.encode(
            jwt.decode(first["resumeToken"], options={"verify_signature": False}), "another-key-" * 4, algorithm="HS256"
        )

        def visitor_with(token: str) -> str:
            reply = visitor_session({"widgetKey": widget["widgetKey"], "resumeToken": token})
            assert reply.status == 201, reply.body
            return str(reply.data["visitorId"])

        assert visitor_with(first["resumeToken"]) == first["visitorId"]
        for token in (foreign, expired, tampered, forged, first["connectToken"], "not-a-token"):
            assert visitor_with(token) != first["visitorId"], token

    def test_bad_bodies_are_client_errors(self, widgets_api: HandlerClient) -> None:
        assert visitor_session({}).status == 422
        assert visitor_session({"widgetKey": "not-a-key"}).status == 422
        assert visitor_session({"widgetKey": "wk_" + "u" * 32, "extra": 1}).status == 422
        assert visitor_session({"widgetKey": "wk_" + "u" * 32, "resumeToken": "x" * 5000}).status == 422


def test_the_key_lookup_needs_no_tenant_and_reads_nothing_else(db: DatabaseUrls, widgets_api: HandlerClient) -> None:
    widget = new_widget(widgets_api)
    with psycopg.connect(db.app) as conn:  # no app.tenant_id at all
        row = conn.execute(
            "SELECT user_id, allowed_origins, revoked FROM widget_key_for_visitors(%s)", (widget["widgetKey"],)
        ).fetchone()
        assert row == (widgets_api.tenant, [SHOP], False)
        assert conn.execute("SELECT * FROM widget_key_for_visitors('wk_unknown')").fetchall() == []
        with pytest.raises(psycopg.errors.UndefinedObject):  # the table itself fails closed without a tenant
            conn.execute("SELECT * FROM widget_keys")


def test_a_tenant_sees_only_its_own_keys_in_the_table(db: DatabaseUrls, widgets_api: HandlerClient) -> None:
    new_widget(widgets_api)
    with psycopg.connect(db.app) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(uuid4()),))
        assert conn.execute("SELECT count(*) FROM widget_keys").fetchone() == (0,)
