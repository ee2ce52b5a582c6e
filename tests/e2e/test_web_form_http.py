"""The widget's web form over real HTTP through the local gateway, as the widget sends it from a merchant's page:
no token, the key in the body and the page's Origin; the merchant's staff then find the ticket through the API."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import httpx

from support.services import rate_limits

FORM = "/api/support/widget/tickets"
SHOP = "https://shop.example"


def new_key(api: httpx.Client, origins: list[str]) -> str:
    reply = api.post("/api/support/widgets", json={"name": "Shop", "allowedOrigins": origins})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["data"]["widgetKey"])


def form(widget_key: str, **fields: str) -> dict[str, str]:
    return {
        "widgetKey": widget_key,
        "name": "Lin Chen",
        "email": "lin@example.com",
        "subject": "The lid does not fit",
        "message": "The teapot's lid is a size too small.",
        **fields,
    }


def test_a_visitor_sends_the_form_and_the_desk_finds_a_web_form_ticket(
    client_for: Callable[..., httpx.Client], gateway_url: str, tenant: UUID, other_tenant: UUID
) -> None:
    api, other = client_for(tenant), client_for(other_tenant)
    key = new_key(api, [SHOP])

    reply = httpx.post(f"{gateway_url}{FORM}", json=form(key, category="breakage"), headers={"Origin": SHOP})

    assert reply.status_code == 201, reply.text
    assert reply.json() == {"success": True, "data": {"reference": "#1001"}}
    found = api.get("/api/support/tickets", params={"search": "#1001"}).json()["data"]
    assert [(t["channel"], t["subject"], t["customerEmail"]) for t in found] == [
        ("web_form", "The lid does not fit", "lin@example.com")
    ]
    assert found[0]["contactId"] is not None
    assert found[0]["customFields"] == {"requestedCategory": "breakage"}  # a category the desk did not use yet
    assert other.get("/api/support/tickets").json()["data"] == []


def test_refusals_honeypot_and_a_flood_over_http(
    client_for: Callable[..., httpx.Client], gateway_url: str, tenant: UUID
) -> None:
    api = client_for(tenant)
    key = new_key(api, [SHOP])
    revoked = new_key(api, [SHOP])
    assert api.delete(f"/api/support/widgets/{revoked}").status_code == 200

    refusals = [
        httpx.post(f"{gateway_url}{FORM}", json=form(key), headers={"Origin": "https://evil.example"}),
        httpx.post(f"{gateway_url}{FORM}", json=form("wk_" + "n" * 32), headers={"Origin": SHOP}),
        httpx.post(f"{gateway_url}{FORM}", json=form(revoked), headers={"Origin": SHOP}),
    ]
    assert [r.status_code for r in refusals] == [403] * 3
    assert len({r.text for r in refusals}) == 1
    invalid = httpx.post(f"{gateway_url}{FORM}", json=form(key, email="nobody"), headers={"Origin": SHOP})
    assert invalid.status_code == 422 and invalid.json()["error"]["details"][0]["field"] == "body.email"

    # The honeypot: answered 201 with a reference, and nothing stored
    bot = httpx.post(f"{gateway_url}{FORM}", json=form(key, website="http://spam.example"), headers={"Origin": SHOP})
    assert bot.status_code == 201 and set(bot.json()["data"]) == {"reference"}
    assert api.get("/api/support/tickets").json()["data"] == []

    # From this one address (the gateway's client, 127.0.0.1): the bucket's burst, the bot's included, then 429
    burst = rate_limits.FORM_PER_IP.burst
    replies = [httpx.post(f"{gateway_url}{FORM}", json=form(key), headers={"Origin": SHOP}) for _ in range(burst)]
    assert [r.status_code for r in replies] == [201] * (burst - 1) + [429]
    assert replies[-1].json()["error"]["code"] == "rate_limited"
    assert int(replies[-1].headers["Retry-After"]) >= 1
    assert len(api.get("/api/support/tickets", params={"channel": "web_form"}).json()["data"]) == burst - 1
