"""A connector's signed deliveries over real HTTP through the local gateway (the template's public route, no JWT):
a new sender's ticket, their next message on its thread, a redelivery stored once, and the refusals (a bad
signature, a replay, an old timestamp, a disabled channel), each answered as documented in docs/api.md."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from uuid import UUID, uuid4

import httpx

BASE = "/api/support/channels"


def _signed(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-signature-timestamp": ts, "x-signature": f"v1={mac}"}


def test_a_connectors_messages_become_a_social_ticket_and_its_thread(
    client_for: Callable[..., httpx.Client], gateway_url: str, tenant: UUID
) -> None:
    admin = client_for(tenant)
    created = admin.post(BASE, json={"name": "Instagram", "kind": "instagram"})
    assert created.status_code == 201, created.text
    channel = created.json()["data"]
    url = f"{BASE}/{channel['id']}/messages"
    connector = httpx.Client(base_url=gateway_url, timeout=10)  # no Authorization: the signature is the credential

    first_body = json.dumps(
        {
            "externalSenderId": "ig-1784",
            "senderName": "Lin",
            "text": "Do you ship to Norway?",
            "externalMessageId": f"ig-m-{uuid4().hex}",
        }
    ).encode()
    first = connector.post(url, content=first_body, headers=_signed(channel["secret"], first_body))
    assert first.status_code == 200, first.text
    delivered = first.json()["data"]
    assert delivered["createdTicket"] is True and delivered["reference"] == "#1001"

    # the connector's retry of the same message, signed anew: the same ticket, nothing stored twice
    retry = connector.post(
        url, content=first_body, headers=_signed(channel["secret"], first_body, int(time.time()) - 2)
    )
    assert retry.status_code == 200 and retry.json()["data"]["duplicate"] is True
    assert retry.json()["data"]["ticketId"] == delivered["ticketId"]

    # the sender's next message threads onto the ticket as theirs
    next_body = json.dumps(
        {"externalSenderId": "ig-1784", "text": "And to Iceland?", "externalMessageId": f"ig-m-{uuid4().hex}"}
    ).encode()
    headers = _signed(channel["secret"], next_body)
    second = connector.post(url, content=next_body, headers=headers)
    assert second.status_code == 200 and second.json()["data"]["ticketId"] == delivered["ticketId"]
    ticket = admin.get(f"/api/support/tickets/{delivered['ticketId']}").json()["data"]
    assert ticket["channel"] == "social" and ticket["subject"] == "Do you ship to Norway?"
    thread = admin.get(f"/api/support/tickets/{delivered['ticketId']}/conversations").json()["data"]
    assert [(c["senderType"], c["senderName"], c["message"]) for c in thread] == [
        ("customer", "Lin", "And to Iceland?")
    ]

    # refusals: the same signature again, an old timestamp, a bad signature; the admin disables the channel
    replay = connector.post(url, content=next_body, headers=headers)
    old = connector.post(url, content=next_body, headers=_signed(channel["secret"], next_body, int(time.time()) - 600))
    forged = connector.post(url, content=next_body, headers=_signed("chs_" + "1" * 64, next_body))
    assert [r.status_code for r in (replay, old, forged)] == [401, 401, 401]
    assert forged.json()["error"]["code"] == "unauthorized"
    assert admin.delete(f"{BASE}/{channel['id']}").status_code == 200
    late_body = json.dumps(
        {"externalSenderId": "ig-1784", "text": "Hello?", "externalMessageId": f"ig-m-{uuid4().hex}"}
    ).encode()
    disabled = connector.post(url, content=late_body, headers=_signed(channel["secret"], late_body))
    assert disabled.status_code == 401
    assert disabled.json()["error"]["message"] == forged.json()["error"]["message"]
    # and the admin routes still need a token
    assert connector.get(BASE).status_code == 401
    connector.close()
