"""The response envelopes, as typed models: routes declare `Response[Envelope[Ticket]]` and the like, so the
OpenAPI document describes every answer and Powertools checks each one against its model before it is sent."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Envelope[T](_Wire):
    """A successful answer: `{"success": true, "data": ...}`."""

    success: Literal[True]
    data: T


class PageEnvelope[T](_Wire):
    """One page of a list, newest (or most used) first: `nextCursor` is null on the last page."""

    success: Literal[True]
    data: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last one")


class ErrorDetail(_Wire):
    field: str = Field(description="where: `body.customerEmail`, `query.cursor`, `path.ticketId`; may be empty")
    message: str
    type: str = Field(description="machine-readable: a pydantic error type, or the error's code")


class ErrorBody(_Wire):
    code: str = Field(description="stable and machine-readable: validation_error, not_found, conflict, ...")
    message: str = Field(description="for people")
    details: list[ErrorDetail]


class ErrorEnvelope(_Wire):
    """Every refusal and failure: `{"success": false, "error": {"code", "message", "details"}}`."""

    success: Literal[False]
    error: ErrorBody
