"""Settings per tenant: one row per tenant and area in `tenant_settings`, holding the area's whole model.

A tenant without a row has the model's defaults (so a default changed in code reaches every tenant that never
chose); a PUT replaces the row with the whole model as validated. Reading is a lookup by primary key, cheap
enough to do inside the transaction that needs a setting (chat_start, sql/definitions/chat.sql, reads the chat
settings' queue cap under the queue lock, and the chat service validates them with ChatSettings).
Only admins change settings; every member of the desk reads them. The row records who changed it last and when.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import errors
from psycopg.types.json import Jsonb

from support.auth import Principal
from support.db import tenant_transaction
from support.db.connection import Cursor
from support.errors import Conflict
from support.models.base import ApiModel
from support.models.settings import ChatSettings, EmailSettings, RoutingSettings

CHAT = "chat"
EMAIL = "email"
ROUTING = "routing"


def read_settings[M: ApiModel](cur: Cursor, tenant_id: UUID, area: str, model: type[M]) -> M:
    """The tenant's settings of `area`, or the model's defaults when it never set them."""
    cur.execute("SELECT settings FROM tenant_settings WHERE user_id = %s AND area = %s", (tenant_id, area))
    row = cur.fetchone()
    stored: dict[str, Any] = row["settings"] if row else {}
    return model.model_validate(stored)


def write_settings[M: ApiModel](principal: Principal, area: str, data: M) -> M:
    principal.require_admin(f"change the {area} settings")
    with tenant_transaction(principal.tenant_id) as cur:
        _store_settings(cur, principal, area, data)
    return data


def _store_settings(
    cur: Cursor, principal: Principal, area: str, data: ApiModel, exclude: set[str] | None = None
) -> None:
    stored = data.model_dump(mode="json", by_alias=False, exclude=exclude)
    cur.execute(
        """INSERT INTO tenant_settings (user_id, area, settings, updated_at, updated_by)
        VALUES (%s, %s, %s, now(), %s)
        ON CONFLICT (user_id, area) DO UPDATE
        SET settings = excluded.settings, updated_at = excluded.updated_at, updated_by = excluded.updated_by""",
        (principal.tenant_id, area, Jsonb(stored), principal.subject[:300] or None),
    )


def chat_settings(cur: Cursor, tenant_id: UUID) -> ChatSettings:
    return read_settings(cur, tenant_id, CHAT, ChatSettings)


def get_chat_settings(principal: Principal) -> ChatSettings:
    with tenant_transaction(principal.tenant_id) as cur:
        return chat_settings(cur, principal.tenant_id)


def put_chat_settings(principal: Principal, data: ChatSettings) -> ChatSettings:
    return write_settings(principal, CHAT, data)


# Email: the sender and switches live in tenant_settings like every area; the inbound addresses in
# email_inbound_addresses, whose global unique index gives each address to one tenant only (sql/0026).
INBOUND_ADDRESSES = "inbound_addresses"


def email_settings(cur: Cursor, tenant_id: UUID) -> EmailSettings:
    """The sender and switches (what the outbox needs), without the inbound addresses."""
    return read_settings(cur, tenant_id, EMAIL, EmailSettings)


def get_email_settings(principal: Principal) -> EmailSettings:
    with tenant_transaction(principal.tenant_id) as cur:
        found = email_settings(cur, principal.tenant_id)
        cur.execute(
            "SELECT address FROM email_inbound_addresses WHERE user_id = %s ORDER BY created_at, address",
            (principal.tenant_id,),
        )
        addresses = [row["address"] for row in cur.fetchall()]
    return found.model_copy(update={INBOUND_ADDRESSES: addresses})


def put_email_settings(principal: Principal, data: EmailSettings) -> EmailSettings:
    """The whole email settings. An inbound address another tenant holds is a 409 (which tells the caller that
    the address is taken: the price of one address per tenant, and no more than a mail server would say)."""
    principal.require_admin(f"change the {EMAIL} settings")
    with tenant_transaction(principal.tenant_id) as cur:
        _store_settings(cur, principal, EMAIL, data, exclude={INBOUND_ADDRESSES})
        cur.execute(
            "DELETE FROM email_inbound_addresses WHERE user_id = %s AND NOT (address = ANY(%s))",
            (principal.tenant_id, data.inbound_addresses),
        )
        for index, address in enumerate(data.inbound_addresses):
            try:
                with cur.connection.transaction():  # a savepoint: the conflict is answered, not the transaction lost
                    cur.execute(
                        """INSERT INTO email_inbound_addresses (user_id, address) VALUES (%s, %s)
                        ON CONFLICT (user_id, address) DO NOTHING""",
                        (principal.tenant_id, address),
                    )
            except errors.UniqueViolation as exc:
                raise Conflict(
                    f"the address {address} belongs to another desk",
                    details=[{"field": f"body.inboundAddresses.{index}", "message": "the address is taken"}],
                ) from exc
    return get_email_settings(principal)


# Routing: read in the database by the functions that route (sql/definitions/routing.sql: routing_settings), so a
# change applies to the next decision. Turning automatic ticket assignment on routes the tickets already waiting
# (support.services.routing.drain_tickets) in the same transaction.
def routing_settings(cur: Cursor, tenant_id: UUID) -> RoutingSettings:
    return read_settings(cur, tenant_id, ROUTING, RoutingSettings)


def get_routing_settings(principal: Principal) -> RoutingSettings:
    principal.require_admin(f"read the {ROUTING} settings")  # issue 18: GET/PUT /settings/routing, admin
    with tenant_transaction(principal.tenant_id) as cur:
        return routing_settings(cur, principal.tenant_id)


def put_routing_settings(principal: Principal, data: RoutingSettings) -> RoutingSettings:
    from support.services import automations, routing

    principal.require_admin(f"change the {ROUTING} settings")
    with tenant_transaction(principal.tenant_id) as cur:
        _store_settings(cur, principal, ROUTING, data)
        if data.auto_assign_tickets:
            routing.drain_tickets(cur, principal)
    if data.auto_assign_tickets:  # committed: the routed tickets' events run now (support.services.automations)
        automations.kick(principal.tenant_id)
    return data
