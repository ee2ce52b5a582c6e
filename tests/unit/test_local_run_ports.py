"""make run's three ports: one PORT moves them all unless each is given, and a busy one suggests a free set."""

from __future__ import annotations

import pytest

from local.run import Ports, busy_ports_message, ports


def test_by_default_the_three_ports_are_3000_3001_and_3002() -> None:
    assert ports({}) == Ports(http=3000, websocket=3001, merchant=3002)


def test_one_port_moves_all_three() -> None:
    assert ports({"PORT": "5511"}) == Ports(http=5511, websocket=5512, merchant=5513)


def test_each_port_given_is_kept() -> None:
    chosen = ports({"PORT": "5511", "WS_PORT": "6000", "MERCHANT_PORT": "8080"})

    assert (chosen.http, chosen.websocket, chosen.merchant) == (5511, 6000, 8080)
    assert chosen.given == {"WS_PORT", "MERCHANT_PORT"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be a number from 1 to 65535, not 'http'"),
        ({"PORT": "3000", "WS_PORT": "0"}, "WS_PORT must be a number from 1 to 65535, not '0'"),
        ({"PORT": "65535"}, "PORT must be at most 65533"),
        ({"PORT": "3000", "MERCHANT_PORT": "3001"}, "must be three different ports"),
    ],
)
def test_impossible_ports_are_refused_in_words(env: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit) as refused:
        ports(env)

    assert message in str(refused.value)


def test_all_free_is_no_message() -> None:
    assert busy_ports_message(ports({}), lambda port: False) is None


def test_a_busy_port_suggests_a_set_of_three_free_ports_not_the_running_ones() -> None:
    """Another make run holds 3000-3002: PORT=3001 (its WebSocket port) would be no answer."""
    taken = {3000, 3001, 3002}

    message = busy_ports_message(ports({}), taken.__contains__)

    assert message == (
        "make run: ports 3000 (PORT), 3001 (WS_PORT) and 3002 (MERCHANT_PORT) on 127.0.0.1 are already in use "
        "(another make run?); choose another, e.g. PORT=3003 make run (3003, 3004 and 3005 are free)"
    )


def test_the_suggestion_skips_sets_with_any_busy_port_and_names_every_busy_one() -> None:
    taken = {3001, 3002, 3005}

    message = busy_ports_message(ports({}), taken.__contains__)

    assert message is not None
    assert message.startswith("make run: ports 3001 (WS_PORT) and 3002 (MERCHANT_PORT) on 127.0.0.1 are already")
    assert message.endswith("e.g. PORT=3006 make run (3006, 3007 and 3008 are free)")


def test_ports_given_one_by_one_are_suggested_one_by_one() -> None:
    """A WS_PORT in the environment would not follow PORT: the suggestion names all three."""
    chosen = ports({"PORT": "4000", "WS_PORT": "4100"})

    message = busy_ports_message(chosen, {4100}.__contains__)

    assert message is not None
    assert message.endswith("e.g. PORT=4001 WS_PORT=4002 MERCHANT_PORT=4003 make run (4001, 4002 and 4003 are free)")
