"""Settings per tenant, one model per area (`GET`/`PUT /api/support/settings/<area>`).

Each area is a model whose defaults are what a new tenant gets; a PUT sends the whole model and is validated as a
whole (a field left out takes its default), so what is stored is always a valid model. Chat is the first area;
routing, SLA, email and retention will follow in the same shape.
"""

from __future__ import annotations

from pydantic import Field

from support.models.base import ApiModel, HttpsUrl

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
