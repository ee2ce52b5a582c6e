"""Widget keys and the visitors who come through them.

A widget key is public (it sits in the merchant's page source), so it is not a secret that proves anything on
its own: what makes a visitor session legitimate is the browser's Origin header matching one of the key's
allowed origins, and every later step carries a token this desk signed (support.visitors). Revoking a key
(admins only) stops new visitor sessions and new connections at once, and closes the key's open visitor
connections after the commit (any message one still sends is refused: support.websocket); it never deletes the
key, so it is never issued again. An admin may replace a live key's allowed origins (a shop that moves to another
address keeps its key); a revoked key stays as it was revoked (409), like a closed ticket.

A tenant has at most 100 widget keys (409 quota_exceeded beyond), created under a per-tenant lock so the cap
holds under concurrent requests.
"""

from __future__ import annotations

import secrets
from uuid import UUID

from support.auth import Principal, Role
from support.db import tenant_transaction, write_one
from support.db.connection import anonymous_transaction
from support.db.statements import admit_under_cap, newest_first
from support.errors import Conflict, Forbidden, RateLimited, found
from support.models.tickets import TicketChannel, TicketCreate
from support.models.widgets import (
    WebFormTicket,
    WebFormTicketCreate,
    Widget,
    WidgetCreate,
    WidgetOriginsUpdate,
    WidgetSession,
    normalize_origin,
)
from support.pagination import Page, page_of
from support.services import automations, tickets, webhooks
from support.services.connections import Outbox, key_connections
from support.services.rate_limits import FORM_PER_IP, FORM_PER_KEY, SESSION_PER_IP, SESSION_PER_KEY, take_tokens_alone
from support.visitors import issue_connect_token, issue_resume_token, new_visitor_id, verify_resume_token

MAX_WIDGET_KEYS_PER_TENANT = 100
WIDGET_COLUMNS = "id, widget_key, name, allowed_origins, created_at, revoked_at"


def _new_widget_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)  # 32 characters after the prefix: 192 random bits


def create_widget(principal: Principal, data: WidgetCreate) -> Widget:
    principal.require_admin("create widget keys")
    with tenant_transaction(principal.tenant_id) as cur:
        admit_under_cap(
            cur,
            principal.tenant_id,
            "widget_keys",
            MAX_WIDGET_KEYS_PER_TENANT,
            f"a tenant may have at most {MAX_WIDGET_KEYS_PER_TENANT} widget keys",
        )
        cur.execute(
            f"""INSERT INTO widget_keys (user_id, widget_key, name, allowed_origins) VALUES (%s, %s, %s, %s)
            RETURNING {WIDGET_COLUMNS}""",  # noqa: S608
            (principal.tenant_id, _new_widget_key(), data.name, data.allowed_origins),
        )
        return Widget.model_validate(cur.fetchone())


def list_widgets(principal: Principal, *, limit: int, cursor: str | None = None) -> Page[Widget]:
    """Newest first, revoked ones included (with `revokedAt`), keyset-paginated."""
    with tenant_transaction(principal.tenant_id) as cur:
        rows = newest_first(cur, principal.tenant_id, "widget_keys", WIDGET_COLUMNS, limit=limit, cursor=cursor)
    return page_of(rows, limit, Widget.model_validate)


def revoke_widget(principal: Principal, widget_key: str) -> Widget:
    """Revoke (idempotent: revoking again keeps the first revocation's time), then close the key's visitor
    connections. Another tenant's key is a 404."""
    principal.require_admin("revoke widget keys")
    outbox = Outbox(principal.tenant_id)
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"""UPDATE widget_keys SET revoked_at = coalesce(revoked_at, now())
            WHERE user_id = %s AND widget_key = %s RETURNING {WIDGET_COLUMNS}""",  # noqa: S608
            (principal.tenant_id, widget_key),
        )
        revoked = Widget.model_validate(found(cur.fetchone(), "widget key"))
        # After the UPDATE, which waits for any $connect of this key holding its row (open_connection).
        outbox.close(key_connections(cur, principal.tenant_id, widget_key))
    outbox.send()
    return revoked


def update_widget_origins(principal: Principal, widget_key: str, data: WidgetOriginsUpdate) -> Widget:
    """Replace a live key's allowed origins (validated as at creation). Another tenant's key is a 404; a revoked
    key is a 409: it admits nobody, whatever its origins say, and stays as it was when it was revoked."""
    principal.require_admin("change widget keys")
    with tenant_transaction(principal.tenant_id) as cur:
        cur.execute(
            f"""UPDATE widget_keys SET allowed_origins = %s
            WHERE user_id = %s AND widget_key = %s AND revoked_at IS NULL RETURNING {WIDGET_COLUMNS}""",  # noqa: S608
            (data.allowed_origins, principal.tenant_id, widget_key),
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(
                "SELECT 1 FROM widget_keys WHERE user_id = %s AND widget_key = %s", (principal.tenant_id, widget_key)
            )
            found(cur.fetchone(), "widget key")
            raise Conflict("this widget key is revoked: create a new one")
        return Widget.model_validate(row)


# One answer for an unknown key, a revoked key and a live key from an origin it does not allow, so a prober learns
# nothing about keys it does not hold (nor which origins a key allows).
NOT_ADMITTED = "this widget key is unknown or revoked, or does not allow this page's origin"


def _admitted(widget_key: str, origin: str | None) -> UUID:
    """The key's tenant, if the key is live and `origin` is one of its origins; Forbidden(NOT_ADMITTED) otherwise."""
    with anonymous_transaction() as cur:
        cur.execute("SELECT user_id, allowed_origins, revoked FROM widget_key_for_visitors(%s)", (widget_key,))
        row = cur.fetchone()
    if row is None or row["revoked"] or not origin_allowed(origin, row["allowed_origins"]):
        raise Forbidden(NOT_ADMITTED)
    return UUID(str(row["user_id"]))


def admitted_tenant(widget_key: str, origin: str | None) -> UUID:
    """The tenant of a live key that admits `origin` (the widget's other public routes: attachments)."""
    return _admitted(widget_key, origin)


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    if not origin:
        return False
    try:
        return normalize_origin(origin) in allowed
    except ValueError:
        return False


def start_visitor_session(
    widget_key: str, origin: str | None, resume_token: str | None, *, source_ip: str | None
) -> WidgetSession:
    """The public widget route: a visitor (new, or the same one again with a valid resume token of this key)
    and the tokens it needs. Admitted requests count against the tenant's buckets of the source IP and of the key
    (RateLimited over either); refused ones count nowhere, so a live key from a foreign origin is answered as an
    unknown key is, however often it is tried."""
    tenant_id = _admitted(widget_key, origin)
    checks = [(SESSION_PER_IP, source_ip or "unknown"), (SESSION_PER_KEY, widget_key)]
    retry_after = take_tokens_alone(tenant_id, checks)
    if retry_after is not None:
        raise RateLimited("too many chat sessions from this address or for this widget key", retry_after=retry_after)
    claims = verify_resume_token(resume_token) if resume_token else None
    if claims is not None and claims.widget_key == widget_key and claims.tenant_id == tenant_id:
        visitor_id = claims.visitor_id
    else:
        visitor_id = new_visitor_id()  # none, foreign, tampered or expired: a new visitor
    connect_token, expires_at = issue_connect_token(tenant_id, widget_key, visitor_id)
    resume, resume_expires_at = issue_resume_token(tenant_id, widget_key, visitor_id)
    return WidgetSession(
        visitor_id=visitor_id,
        connect_token=connect_token,
        expires_at=expires_at,
        resume_token=resume,
        resume_expires_at=resume_expires_at,
    )


def submit_web_form(
    form: WebFormTicketCreate, origin: str | None, *, source_ip: str | None
) -> tuple[WebFormTicket, bool]:
    """The widget's web form: a ticket of the key's tenant with `channel = web_form`, made by the tickets service
    (support.services.tickets.create_ticket: the contact, the reference and the `received` email follow as for any
    ticket), the message as its description. Refused as the visitor session route refuses (NOT_ADMITTED); admitted
    requests count against the form's own buckets per source IP and per key (RateLimited over either).

    The honeypot: a form whose hidden `website` field is filled in came from a bot. It is admitted and counted as
    any other, stores nothing, and is answered as a person is: 201 and a reference, one the tenant's counter gives
    and no ticket will ever have (skip_ticket_reference), so the bot learns nothing and no one is misled by a
    reference that belongs to someone else's ticket. The second value says whether a ticket was made (False for
    the honeypot: for the metrics, never for the answer)."""
    tenant_id = _admitted(form.widget_key, origin)
    checks = [(FORM_PER_IP, source_ip or "unknown"), (FORM_PER_KEY, form.widget_key)]
    retry_after = take_tokens_alone(tenant_id, checks)
    if retry_after is not None:
        raise RateLimited("too many messages from this address or for this widget key", retry_after=retry_after)
    if form.website:
        row = write_one(tenant_id, "SELECT skip_ticket_reference() AS reference", ())
        return WebFormTicket(reference=f"#{row['reference'] if row else ''}"), False
    principal = Principal(tenant_id=tenant_id, role=Role.VISITOR, subject="web-form", widget_key=form.widget_key)
    data = TicketCreate(
        customer_name=form.name,
        customer_email=form.email,
        subject=form.subject,
        description=form.message,
        category=form.category,
    )
    ticket = tickets.create_ticket(principal, data, channel=TicketChannel.WEB_FORM)
    automations.kick(tenant_id)  # committed: the ticket's events run now (support.services.automations)
    webhooks.kick(tenant_id)  # and its webhook deliveries are dispatched
    return WebFormTicket(reference=str(ticket.reference)), True
