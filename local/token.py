"""Tokens for the local gateway, signed with the local key: `python -m local.token --tenant <uuid> --role admin`.

The claims are the ones the support API reads from `requestContext.authorizer.jwt.claims`:
`tenant_id` (the merchant account that owns the desk), `role` (admin or agent) and, for an agent,
`agent_id`; plus the registered claims the JWT authorizer checks (`iss`, `aud`, `exp`).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt

from local.jwt_keys import ALGORITHM, AUDIENCE, ISSUER, KEY_DIR, signing_key

ROLES = ("admin", "agent")


def mint_token(
    tenant_id: str,
    role: str,
    agent_id: str | None = None,
    subject: str | None = None,
    expires_in: int = 3600,
    *,
    issuer: str = ISSUER,
    audience: str | Sequence[str] = AUDIENCE,
    extra_claims: Mapping[str, Any] | None = None,
    key_dir: Path = KEY_DIR,
) -> str:
    """An RS256 token the local gateway accepts. Nothing is validated here, so tests can also mint
    tokens the gateway or the handlers must refuse (a negative `expires_in` gives an expired one)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience if isinstance(audience, str) else list(audience),
        "sub": subject or f"local|{role}|{agent_id or tenant_id}",
        "iat": now,
        "exp": now + expires_in,
        "tenant_id": tenant_id,
        "role": role,
    }
    if agent_id is not None:
        claims["agent_id"] = agent_id
    claims.update(extra_claims or {})
    key = signing_key(key_dir)
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.key_id})


EXAMPLE_TENANT = "a0000000-0000-4000-8000-00000000000a"  # Acme Outfitters, a demo tenant of `make run`
DEFAULT_TTL = 3600


class _Refused(Exception):
    pass


def _uuid(value: str | None, variable: str) -> str:
    try:
        return str(uuid.UUID(value or ""))
    except ValueError:
        raise _Refused(f"{variable} is not a UUID: {value!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """`make token` and `python -m local.token`. A refusal is one line on stderr, naming the make variable
    and the flag, and exit status 2; the token alone goes to stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m local.token",
        description="Print a JWT for the local gateway (signed with the key in .local/jwt/).",
    )
    parser.add_argument("--tenant", default=None, help="TENANT=: the tenant id (UUID); required")
    parser.add_argument("--role", default="admin", help="ROLE=: admin (default) or agent")
    parser.add_argument(
        "--agent", default=None, help="AGENT=: the agent id (UUID) the caller acts as; required for agent"
    )
    parser.add_argument("--subject", default=None, help="the `sub` claim (default: derived from the ids)")
    parser.add_argument(
        "--expires-in", default=str(DEFAULT_TTL), metavar="SECONDS", help=f"TTL=: lifetime, default {DEFAULT_TTL}"
    )
    args = parser.parse_args(argv)
    try:
        if args.tenant is None:
            raise _Refused(
                f"TENANT= (--tenant) is required: the tenant's UUID, e.g. make token TENANT={EXAMPLE_TENANT}"
            )
        tenant = _uuid(args.tenant, "TENANT= (--tenant)")
        if args.role not in ROLES:
            raise _Refused(f"ROLE= (--role): invalid choice {args.role!r}, it is admin or agent")
        agent = _uuid(args.agent, "AGENT= (--agent)") if args.agent else None
        if args.role == "agent" and agent is None:
            raise _Refused(
                "ROLE=agent needs AGENT=<the agent's UUID> (--agent): an agent token without one acts as no agent, "
                "and setting an agent's status answers 403"
            )
        if not args.expires_in.isdigit() or int(args.expires_in) < 1:
            raise _Refused(f"TTL= (--expires-in) must be a whole number of seconds, 1 or more, not {args.expires_in!r}")
    except _Refused as refusal:
        sys.stderr.write(f"make token: {refusal}\n")
        return 2
    token = mint_token(tenant, args.role, agent_id=agent, subject=args.subject, expires_in=int(args.expires_in))
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
