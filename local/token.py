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


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.token",
        description="Print a JWT for the local gateway (signed with the key in .local/jwt/).",
    )
    parser.add_argument("--tenant", required=True, type=_uuid, help="tenant id (UUID)")
    parser.add_argument("--role", required=True, choices=ROLES, help="admin or agent")
    parser.add_argument("--agent", type=_uuid, default=None, help="agent id (UUID) the caller acts as")
    parser.add_argument("--subject", default=None, help="the `sub` claim (default: derived from the ids)")
    parser.add_argument("--expires-in", type=int, default=3600, metavar="SECONDS", help="default 3600")
    args = parser.parse_args(argv)  # a bad UUID or role: a message on stderr and exit status 2
    token = mint_token(args.tenant, args.role, agent_id=args.agent, subject=args.subject, expires_in=args.expires_in)
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
