"""`make token` as a developer types it: the token alone on stdout, accepted by the local gateway's JWT
authorizer with the claims asked for and the lifetime asked for; a missing TENANT=, or ROLE=agent without
AGENT=, is refused with one line that names the variable, instead of a token that later meets a 401 or 403."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import jwt
import pytest

from local.gateway import JwtAuthorizer
from local.template import REPO

TENANT = "a0000000-0000-4000-8000-00000000000a"


def _make_token(*variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "token", *variables], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def _refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""  # nothing a `TOKEN=$(make -s token ...)` would take for a token
    return result.stderr.splitlines()[0]


def test_an_admin_token_lasts_an_hour_by_default() -> None:
    result = _make_token(f"TENANT={TENANT}")

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = JwtAuthorizer.local().claims(f"Bearer {token}")
    assert (claims["tenant_id"], claims["role"]) == (TENANT, "admin")
    assert "agent_id" not in claims
    assert claims["exp"] - claims["iat"] == 3600


def test_ttl_sets_the_lifetime_and_agent_the_agent() -> None:
    agent = str(uuid.uuid4())
    result = _make_token(f"TENANT={TENANT}", "ROLE=agent", f"AGENT={agent}", "TTL=86400")

    assert result.returncode == 0, result.stderr
    claims = JwtAuthorizer.local().claims(result.stdout.strip())
    assert (claims["role"], claims["agent_id"]) == ("agent", agent)
    assert claims["exp"] - claims["iat"] == 86400


def test_no_tenant_is_refused_naming_tenant() -> None:
    line = _refusal(_make_token("ROLE=admin"))

    assert line.startswith("make token: TENANT= (--tenant) is required")
    assert f"TENANT={TENANT}" in line  # an example to paste


def test_an_agent_token_without_an_agent_is_refused_naming_agent() -> None:
    line = _refusal(_make_token(f"TENANT={TENANT}", "ROLE=agent"))

    assert line.startswith("make token: ROLE=agent needs AGENT=")
    assert "403" in line


@pytest.mark.parametrize(
    ("arguments", "start"),
    [
        (["--tenant", "acme"], "make token: TENANT= (--tenant) is not a UUID: 'acme'"),
        (["--tenant", ""], "make token: TENANT= (--tenant) is not a UUID: ''"),
        (["--tenant", TENANT, "--role", "owner"], "make token: ROLE= (--role): invalid choice 'owner'"),
        (["--tenant", TENANT, "--role", "agent", "--agent", "grace"], "make token: AGENT= (--agent) is not a UUID"),
        (["--tenant", TENANT, "--expires-in", "0"], "make token: TTL= (--expires-in) must be a whole number"),
        (["--tenant", TENANT, "--expires-in", "1h"], "make token: TTL= (--expires-in) must be a whole number"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(arguments: list[str], start: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local.token", *arguments], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(start)
    assert result.stderr.count("\n") == 1


def test_an_expired_local_token_is_refused_by_the_authorizer() -> None:
    """What docs/api.md says a 401 for an old token looks like: the authorizer names the expiry."""
    result = _make_token(f"TENANT={TENANT}", "TTL=1")
    token = result.stdout.strip()

    time.sleep(2.1)
    with pytest.raises(jwt.ExpiredSignatureError):
        JwtAuthorizer.local().claims(token)
