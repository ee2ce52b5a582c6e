"""Widget keys (what a merchant embeds in its pages) and visitor sessions of the chat widget."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from support.models.base import ApiModel, Category, Email, MessageText, Name, Record
from support.models.tickets import Subject
from support.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

WIDGET_KEY_PATTERN = r"^wk_[A-Za-z0-9_-]{20,64}$"
MAX_ORIGINS_PER_WIDGET = 50
# Plain http is allowed only for a developer's own machine, as browsers treat it as a secure context.
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


def normalize_origin(value: str) -> str:
    """An origin as browsers send it in the Origin header: `scheme://host[:port]`, host in lower case, no path.
    https only, except for localhost. Raises ValueError for anything else."""
    parts = urlsplit(value.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("an origin is https://host or https://host:port")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError("an origin has no path, query, fragment or credentials")
    display_host = f"[{host}]" if ":" in host else host
    if parts.scheme == "http" and display_host not in _LOCAL_HOSTS:
        raise ValueError("an origin must use https (http only for localhost)")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("the origin's port is not a number from 0 to 65535") from exc
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{display_host}" + (f":{port}" if port is not None and port != default else "")


def _origin(value: str) -> str:
    try:
        return normalize_origin(value)
    except ValueError as exc:
        raise PydanticCustomError("origin", str(exc)) from exc


Origin = Annotated[
    str,
    StringConstraints(min_length=8, max_length=300),
    AfterValidator(_origin),
    Field(examples=["https://shop.example"]),
]
WidgetKey = Annotated[str, StringConstraints(pattern=WIDGET_KEY_PATTERN)]


def _distinct(origins: list[str]) -> list[str]:
    if len(set(origins)) != len(origins):
        raise PydanticCustomError("unique", "each origin once")
    return origins


AllowedOrigins = Annotated[
    list[Origin], Field(min_length=1, max_length=MAX_ORIGINS_PER_WIDGET), AfterValidator(_distinct)
]


class WidgetCreate(ApiModel):
    name: Name
    allowed_origins: AllowedOrigins


class WidgetOriginsUpdate(ApiModel):
    """PATCH /api/support/widgets/{widgetKey}: the key's new list of origins, in place of the old one."""

    allowed_origins: AllowedOrigins


class WidgetQuery(ApiModel):
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None


class Widget(Record):
    widget_key: str = Field(description="public: embed it in the merchant's pages (data-widget-key)")
    name: str
    allowed_origins: list[str]
    created_at: datetime
    revoked_at: datetime | None = Field(description="set once revoked: no new visitor sessions or connections")


class WidgetSessionRequest(ApiModel):
    widget_key: WidgetKey
    resume_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None


class WidgetSession(Record):
    visitor_id: str
    connect_token: str = Field(description="for ?visitorToken= on the WebSocket connection; valid 5 minutes")
    expires_at: datetime = Field(description="when the connect token expires")
    resume_token: str = Field(description="keep it (30 days) and send it again to stay the same visitor")
    resume_expires_at: datetime


# The widget's web form (POST /api/support/widget/tickets): the same rules as the API's TicketCreate for the same
# fields (tickets.py: Name, Email, Subject; the message is a description, required and not blank here).
HONEYPOT_MAX_CHARS = 2000


class WebFormTicketCreate(ApiModel):
    """A visitor's message through the merchant's page. `website` is the honeypot: the form hides it from people,
    so only a bot fills it in (support.services.widgets.submit_web_form)."""

    widget_key: WidgetKey
    name: Name
    email: Email
    subject: Subject
    message: MessageText
    category: Category | None = None
    website: Annotated[str, StringConstraints(max_length=HONEYPOT_MAX_CHARS)] | None = Field(
        default=None, description="the honeypot: leave it out or empty (the widget hides it from people)"
    )


class WebFormTicket(Record):
    """What a visitor learns of the ticket their form made: its reference, to quote in a later email or call. Not
    its id: a visitor has no way to read a ticket through the API, and needs none."""

    reference: str = Field(examples=["#1042"])
