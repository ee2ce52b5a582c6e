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

from psycopg.types.json import Jsonb

from support.auth import Principal
from support.db import tenant_transaction
from support.db.connection import Cursor
from support.models.base import ApiModel
from support.models.settings import ChatSettings

CHAT = "chat"


def read_settings[M: ApiModel](cur: Cursor, tenant_id: UUID, area: str, model: type[M]) -> M:
    """The tenant's settings of `area`, or the model's defaults when it never set them."""
    cur.execute("SELECT settings FROM tenant_settings WHERE user_id = %s AND area = %s", (tenant_id, area))
    row = cur.fetchone()
    stored: dict[str, Any] = row["settings"] if row else {}
    return model.model_validate(stored)


def write_settings[M: ApiModel](principal: Principal, area: str, data: M) -> M:
    principal.require_admin(f"change the {area} settings")
    stored = data.model_dump(mode="json", by_alias=False)
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            """INSERT INTO tenant_settings (user_id, area, settings, updated_at, updated_by)
            VALUES (%s, %s, %s, now(), %s)
            ON CONFLICT (user_id, area) DO UPDATE
            SET settings = excluded.settings, updated_at = excluded.updated_at, updated_by = excluded.updated_by""",
            (principal.tenant_id, area, Jsonb(stored), principal.subject[:300] or None),
        )
    return data


def chat_settings(cur: Cursor, tenant_id: UUID) -> ChatSettings:
    return read_settings(cur, tenant_id, CHAT, ChatSettings)


def get_chat_settings(principal: Principal) -> ChatSettings:
    with tenant_transaction(principal.tenant_id) as cur:
        return chat_settings(cur, principal.tenant_id)


def put_chat_settings(principal: Principal, data: ChatSettings) -> ChatSettings:
    return write_settings(principal, CHAT, data)
