"""Chat input models: what the server takes from the request itself, and what it refuses from the client."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from pydantic import ValidationError

from support.models.chat import VISITOR_BROWSER_MAX_CHARS, ChatSessionEnd, ChatSessionStart, VisitorContext


@pytest.mark.parametrize(
    ("source_ip", "expected"),
    [
        ("203.0.113.10", IPv4Address("203.0.113.10")),
        ("2001:db8::1", IPv6Address("2001:db8::1")),
        ("not-an-ip", None),
        ("", None),
        (None, None),
    ],
)
def test_the_visitor_ip_is_the_source_ip_or_unknown(source_ip: str | None, expected: object) -> None:
    assert VisitorContext.from_request(source_ip, None).ip == expected


def test_the_browser_is_the_user_agent_without_nul_and_cut_to_the_column() -> None:
    assert VisitorContext.from_request(None, "  curl/8.5.0 ").browser == "curl/8.5.0"
    assert VisitorContext.from_request(None, "a\x00b").browser == "ab"
    assert VisitorContext.from_request(None, "   ").browser is None
    long_agent = "x" * (VISITOR_BROWSER_MAX_CHARS + 5)
    assert VisitorContext.from_request(None, long_agent).browser == "x" * VISITOR_BROWSER_MAX_CHARS


@pytest.mark.parametrize("duration", [60, None, "60"])
def test_ending_refuses_any_client_duration(duration: object) -> None:
    with pytest.raises(ValidationError) as refused:
        ChatSessionEnd.model_validate({"duration": duration})
    assert refused.value.errors()[0]["type"] == "server_computed"
    assert ChatSessionEnd.model_validate({}).duration is None


def test_the_visitor_connection_is_not_taken_from_the_body() -> None:
    with pytest.raises(ValidationError) as refused:
        ChatSessionStart.model_validate({"visitorId": "v", "visitorIp": "10.0.0.1", "visitorBrowser": "x"})
    assert {err["loc"][0] for err in refused.value.errors()} == {"visitorIp", "visitorBrowser"}
