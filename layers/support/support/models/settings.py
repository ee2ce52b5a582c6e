"""Settings per tenant, one model per area (`GET`/`PUT /api/support/settings/<area>`).

Each area is a model whose defaults are what a new tenant gets; a PUT sends the whole model and is validated as a
whole (a field left out takes its default), so what is stored is always a valid model. Chat and email so far;
routing, SLA and retention will follow in the same shape.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from support.models.base import ApiModel, Email, HttpsUrl, Name

DEFAULT_QUEUE_CAP = 50
MAX_QUEUE_CAP = 10_000


class ChatSettings(ApiModel):
    """Live chat: how many visitors may wait for an agent, and where to send those who find the desk busy."""

    queue_cap: int = Field(
        default=DEFAULT_QUEUE_CAP,
        ge=1,
        le=MAX_QUEUE_CAP,
        description="the most chat sessions that wait for an agent at once; a visitor's new chat beyond it is "
        "answered `desk_busy`",
    )
    web_form_url: HttpsUrl | None = Field(
        default=None, description="the tenant's contact form, offered to a visitor who finds the desk busy"
    )


MAX_INBOUND_ADDRESSES = 20


class EmailSettings(ApiModel):
    """Email: the addresses the desk receives at, who the desk's mail comes from, and which events tell the customer.

    Nothing is sent until `fromAddress` is set (a verified SES identity); from then on each switch that is on sends
    its notice. An inbound address belongs to one tenant only: naming one that another tenant holds is a 409."""

    inbound_addresses: list[Email] = Field(
        default_factory=list,
        max_length=MAX_INBOUND_ADDRESSES,
        description="the addresses the desk receives at (for example support@shop.example, forwarded to the "
        "stack's receiving domain); each belongs to one tenant only",
    )
    from_name: Name | None = Field(default=None, description="the sender name of the desk's mail")
    from_address: Email | None = Field(
        default=None, description="the address the desk's mail comes from: an identity verified in SES"
    )
    notify_received: bool = Field(default=True, description="tell the customer their ticket was received")
    notify_replied: bool = Field(default=True, description="send the customer an agent's public reply")
    notify_resolved: bool = Field(
        default=True, description="tell the customer their ticket was resolved, and how to rate it"
    )
    notify_closed: bool = Field(default=True, description="tell the customer their ticket was closed")

    @field_validator("inbound_addresses")
    @classmethod
    def _distinct_addresses(cls, addresses: list[str]) -> list[str]:
        lowered = [address.lower() for address in addresses]
        if len(set(lowered)) != len(lowered):
            raise PydanticCustomError("duplicate_address", "each inbound address may be named once")
        return lowered

    @field_validator("from_address")
    @classmethod
    def _sendable(cls, address: str | None) -> str | None:
        """SES sends from ASCII addresses only: an internationalised domain is kept in its ASCII form (IDNA)."""
        if address is None:
            return None
        local, _, domain = address.rpartition("@")
        if not local.isascii():
            raise PydanticCustomError("value_error", "SES sends only from an address whose local part is ASCII")
        return f"{local}@{domain.encode('idna').decode('ascii') if not domain.isascii() else domain}"

    def sends(self, kind: str) -> bool:
        """Whether a notice of `kind` (received, replied, resolved, closed) goes out."""
        return self.from_address is not None and bool(getattr(self, f"notify_{kind}"))
