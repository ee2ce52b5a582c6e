"""Shared model bases and field types."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

MESSAGE_MAX_BYTES = 50 * 1024  # the seed's "Message Size: Up to 50KB per message"


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields in a request body are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=True,
    )


class Record(BaseModel):
    """A row as the API returns it: built from database rows, serialised by alias."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


def _within_message_limit(value: str) -> str:
    size = len(value.encode())
    if size > MESSAGE_MAX_BYTES:
        # Its own error type, so the HTTP layer answers 413 rather than 422.
        raise PydanticCustomError(
            "payload_too_large",
            "text is {size} bytes; the limit is {limit} bytes",
            {"size": size, "limit": MESSAGE_MAX_BYTES},
        )
    return value


# Text whose size is bounded by the message limit (counted in UTF-8 bytes, as stored).
MessageText = Annotated[str, StringConstraints(min_length=1), AfterValidator(_within_message_limit)]
OptionalLongText = Annotated[str, AfterValidator(_within_message_limit)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=40, pattern=r"^[0-9+()\-. ]+$")]
