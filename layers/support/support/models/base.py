"""Shared model bases and field types."""

from __future__ import annotations

import json
import unicodedata
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import (
    AfterValidator,
    AnyUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    UrlConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

MESSAGE_MAX_BYTES = 50 * 1024  # the seed's "Message Size: Up to 50KB per message"
CUSTOM_FIELDS_MAX_BYTES = 16 * 1024


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields in a request body are refused.

    Text is kept exactly as sent unless its type says otherwise: the short, single-line values (names, emails,
    titles, subjects, keys, categories, ids, search text, URLs) strip surrounding whitespace, each by its own
    `StringConstraints(strip_whitespace=True)`; bodies people write (messages, descriptions, canned response
    content, feedback) keep every space and line break, so a code block keeps its indentation and last newline.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Record(BaseModel):
    """A row as the API returns it: built from database rows, serialised by alias."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


def _no_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000: refuse it here as bad input, not later as a 500.
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "text may not contain the NUL character")
    return value


NoNul = AfterValidator(_no_nul)


def _unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store this text, or None: U+0000, or a lone surrogate (JSON's `\\ud800` decodes to
    one, and it has no UTF-8 encoding)."""
    if "\x00" in text:
        return "string_nul"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "string_unicode"
    return None


_UNSTORABLE_MESSAGES = {
    "string_nul": "text may not contain the NUL character (at {where})",
    "string_unicode": "text must be valid Unicode; a lone surrogate is not (at {where})",
}


def _first_unstorable(value: Any) -> tuple[str, str] | None:
    """(error type, where: `a.b[2]`) of the first key or string in a decoded JSON value that PostgreSQL cannot
    store, or None. The decoded text is checked, not its JSON encoding: the six characters `\\u0000` typed as
    text are not a NUL, and are kept. Iterative, so a deeply nested value cannot exhaust the stack."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if reason := _unstorable(item):
                return reason, path
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if reason := _unstorable(str(key)):
                    return reason, child_path
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return None


def _json_object_within_limits(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value).encode()) > CUSTOM_FIELDS_MAX_BYTES:  # first: the walk below is then bounded
        raise PydanticCustomError(
            "payload_too_large", "custom fields take at most {limit} bytes of JSON", {"limit": CUSTOM_FIELDS_MAX_BYTES}
        )
    found = _first_unstorable(value)
    if found is not None:
        reason, where = found
        shown = where.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode()
        raise PydanticCustomError(reason, _UNSTORABLE_MESSAGES[reason], {"where": shown})
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object_within_limits)]


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


def _not_blank(value: str) -> str:
    # Kept as sent, but a message must say something: only spaces and line breaks is refused.
    if not value.strip():
        raise PydanticCustomError("string_blank", "text may not be empty or only whitespace")
    return value


def _valid_email(value: str) -> str:
    # Imported on first use rather than with the models (as pydantic's EmailStr does): it compiles its
    # patterns at import, about 40 ms of every cold start, for a check only some requests need.
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(exc)}
        ) from exc


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=320),
    AfterValidator(_valid_email),
    WithJsonSchema({"type": "string", "format": "email"}),
]

# Bodies, kept byte for byte as sent (never stripped).
# A message: bounded by the message limit (counted in UTF-8 bytes, as stored; 413 over), and not blank (422).
MessageText = Annotated[str, NoNul, AfterValidator(_within_message_limit), AfterValidator(_not_blank)]
# An optional long text such as a ticket's description: bounded like a message; empty or blank is kept as sent.
OptionalLongText = Annotated[str, NoNul, AfterValidator(_within_message_limit)]
# Feedback a customer writes about a ticket or a chat.
FeedbackText = Annotated[str, StringConstraints(max_length=5000), NoNul]

# Short single-line values, stripped of surrounding whitespace before their length is checked.
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=40, pattern=r"^[0-9+()\-. ]+$")
]
CATEGORY_MAX_CHARS = 64
# Control characters, which a label or a name shown beside other text may not hold: controls (C0, DEL, C1), line
# and paragraph separators, and the bidirectional marks, embeddings, overrides and isolates (which would reorder
# the text around it on a dashboard or in a chat list). Other format characters (the zero-width joiners that
# emoji and some scripts need) are not among them.
_CONTROL_CATEGORIES = {"Cc", "Zl", "Zp"}
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in _CONTROL_CATEGORIES or ch in _BIDI_CONTROLS


def _without_control_characters(value: Any) -> Any:
    """A display name as it is kept: control characters dropped, and those that break a line or a tab (a name is
    one line) turned into a space. NUL is left for `NoNul` to refuse, as everywhere."""
    if not isinstance(value, str) or not any(_is_control(ch) for ch in value):
        return value
    return "".join((" " if ch.isspace() else "") if ch != "\x00" and _is_control(ch) else ch for ch in value)


# A name people are shown by (a visitor's, a customer's, a message's sender, an agent's, a widget key's): the one
# type wherever such a name enters, over HTTP or the WebSocket. Stripped of control characters (not refused: a
# stray mark pasted with a name is no reason to turn a visitor away), then of surrounding whitespace, then 1 to 200
# characters.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    BeforeValidator(_without_control_characters),  # after the constraints in this list, so it runs before them
    NoNul,
]


def _no_control_characters(value: str) -> str:
    for ch in value:
        if _is_control(ch):
            raise PydanticCustomError(
                "string_control_character",
                "text may not contain control characters (found U+{code})",
                {"code": f"{ord(ch):04X}"},
            )
    return value


# A category: a short label a tenant files tickets and canned responses under, and the dashboard counts by, so
# it is bounded: stripped of surrounding whitespace, then 1 to 64 characters, none of them a control character
# (NUL included). How many distinct categories a tenant may have is the services' business.
Category = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=CATEGORY_MAX_CHARS),
    AfterValidator(_no_control_characters),
]

# A media type as a client names it (`image/png`): stripped, as the other short values.
# A message's uploaded files (support.services.attachments): at most 10 per message.
AttachmentIds = Annotated[list[UUID], Field(max_length=10)]

MediaType = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), NoNul]


ATTACHMENT_URL_MAX_CHARS = 2048
_HTTPS_URL: TypeAdapter[AnyUrl] = TypeAdapter(
    Annotated[AnyUrl, UrlConstraints(allowed_schemes=["https"], host_required=True)]
)


def _https_url(value: str) -> str:
    """An attachment's link is shown to agents as a link to click: only an absolute `https` URL with a host.

    Checked on the text as sent, as well as by pydantic's URL parser, which is lenient the way browsers are
    (it reads `https:///host` and `https:host` as `https://host/` and drops tabs and newlines inside): so
    `javascript:`, `data:`, `http:`, relative URLs, a missing host, whitespace or control characters anywhere,
    and user info (`https://bank.example@evil.example`) are all refused. The scheme is case-insensitive. The
    URL is stored as given (not normalised), so a client finds the very string it sent.
    """
    parts = urlsplit(value)
    reason = None
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        reason = "it contains whitespace or a control character"
    elif parts.scheme.lower() != "https":
        reason = "the scheme must be https"
    elif not value[len(parts.scheme) :].startswith("://") or not parts.hostname:
        reason = "it has no host"
    elif "@" in parts.netloc:
        reason = "user info (user@) is not allowed"
    else:
        try:
            _HTTPS_URL.validate_python(value)
        except ValidationError:
            reason = "it is not a valid URL"
    if reason:
        raise PydanticCustomError(
            "url_https", "must be an absolute https URL with a host: {reason}", {"reason": reason}
        )
    return value


AttachmentUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=ATTACHMENT_URL_MAX_CHARS),
    AfterValidator(_https_url),
    WithJsonSchema(
        {
            "type": "string",
            "format": "uri",
            "minLength": 1,
            "maxLength": ATTACHMENT_URL_MAX_CHARS,
            "pattern": "^[Hh][Tt][Tt][Pp][Ss]://[^/?#@\\s]",
            "description": "an absolute https URL with a host, stored as given",
        }
    ),
]
# Any other link the desk shows people to follow (a tenant's web form): the same rule as an attachment's.
HttpsUrl = AttachmentUrl
