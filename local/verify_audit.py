"""`make verify-audit [TENANT=<uuid>]`: recompute every tenant's audit chain and report the first break of each.

Runs against the database `make run` uses (or DATABASE_URL), as the schema owner. The unsealed entries are sealed
first (as the sweep's `audit` step does every minute), then each chain is read in its order, a batch at a time, and
every link is recomputed here, in Python, from the entry's canonical content (audit_entry_canonical, the bytes the
sealer hashed): sha256(previous hash || content), starting from the tenant's anchor (zero bytes, or the last entry
pruned). A break is a sequence number skipped (an entry deleted), a hash that differs (an entry edited, or two
swapped), personal values that no longer match their entry's digest, or a chain that ends before its recorded head
(a deleted tail). Progress goes to stderr; exit status 1 when any chain is broken.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

BATCH = 5000

_STATE = "SELECT user_id, last_seq, last_hash, anchor_seq, anchor_hash FROM audit_chain_state"
_ENTRIES = """SELECT a.seq, a.entry_hash, audit_entry_canonical(a) AS content,
                     p.entry_id IS NULL OR sha256(p.salt || convert_to(p.vals::text, 'UTF8'))
                                           IS NOT DISTINCT FROM a.personal_digest AS personal_ok
              FROM audit_entries a LEFT JOIN audit_personal_values p ON p.entry_id = a.id
              WHERE a.user_id = %s AND a.seq > %s ORDER BY a.seq LIMIT %s"""


@dataclass
class Break:
    tenant: UUID
    seq: int
    problem: str


def verify_chain(conn: psycopg.Connection[Any], tenant: UUID, *, progress: bool = True) -> tuple[int, Break | None]:
    """(entries checked, the first break or None) of one tenant's chain."""
    state = conn.execute(_STATE + " WHERE user_id = %s", (tenant,)).fetchone()
    if state is None:
        return 0, None
    _, head_seq, head_hash, seq, previous = state
    previous = bytes(previous)
    checked = 0
    while True:
        rows = conn.execute(_ENTRIES, (tenant, seq, BATCH)).fetchall()
        for entry_seq, stored, content, personal_ok in rows:
            if entry_seq != seq + 1:
                return checked, Break(tenant, seq + 1, "missing")
            link = hashlib.sha256(previous + content.encode()).digest()
            if stored is None or link != bytes(stored):
                return checked, Break(tenant, entry_seq, "changed")
            if not personal_ok:
                return checked, Break(tenant, entry_seq, "personal values changed")
            seq, previous = entry_seq, link
            checked += 1
        if progress and rows:
            print(f"  {tenant}: {checked} of {head_seq - state[3]} entries verified", file=sys.stderr)
        if len(rows) < BATCH:
            break
    if seq != head_seq or previous != bytes(head_hash):
        return checked, Break(tenant, seq + 1, "truncated" if seq < head_seq else "changed")
    return checked, None


def verify(owner_url: str, *, tenant: UUID | None = None, seal: bool = True) -> list[Break]:
    """Prints each tenant's result; returns the breaks found."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        if seal:
            sealed = conn.execute("SELECT audit_seal(%s)", (10_000_000,)).fetchone()
            print(f"sealed {sealed[0] if sealed else 0} new entries", file=sys.stderr)
        tenants = [tenant] if tenant is not None else [row[0] for row in conn.execute(_STATE + " ORDER BY 1")]
        breaks = []
        total = 0
        for each in tenants:
            checked, found = verify_chain(conn, each)
            total += checked
            if found is not None:
                breaks.append(found)
                print(f"{each}  BROKEN at entry {found.seq}: {found.problem} ({checked} verified before it)")
            else:
                print(f"{each}  ok: {checked} entries")
    print(f"{len(tenants)} chain(s), {total} entries verified: {len(breaks)} broken", file=sys.stderr)
    return breaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tenant", type=UUID, help="only this tenant's chain")
    args = parser.parse_args()
    from local.database import database
    from local.run import DATA_DIR_VARIABLE, DEFAULT_DATA_DIR

    data_dir = Path(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR)
    with database("support", purpose="run", data_dir=data_dir, quiet=True) as urls:
        breaks = verify(urls.owner, tenant=args.tenant)
    sys.exit(1 if breaks else 0)


if __name__ == "__main__":
    main()
