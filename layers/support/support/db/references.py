"""The backfill of ticket references (sql/0025): the tickets created before references existed get theirs.

The migration reserves each tenant's range (#1001 up to #1000 + its ticket count) and new tickets are numbered
above it from the moment it commits; this numbers the old tickets in the order they were created, one batch of one
tenant per transaction (public.backfill_ticket_references, sql/definitions/ticket_references.sql), so no
transaction holds more than BATCH tickets' row locks, for a fraction of a second, and a ticket created meanwhile
is numbered as usual (above the range: the two never meet). Each batch's UPDATE sets only the reference: the
totals' triggers find nothing to move and updated_at keeps its value.

Run after the migrations by every migrate (the migrate function on a deploy, `make run`, the tests), within a time
budget: a run that stops at its budget leaves the rest for the next one, where it stopped. Two runners at once
take different tenants (or wait for none: SKIP LOCKED). Runs as the schema owner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

BATCH = 5_000
# The migrate function has 300 s in all (template.yaml); the migrations and the passwords need far less.
BUDGET_SECONDS = 180.0


def backfill_references(
    conn: psycopg.Connection[Any],
    *,
    batch: int = BATCH,
    budget_seconds: float = BUDGET_SECONDS,
    log: Callable[[str], None] = print,
) -> tuple[int, bool]:
    """Number old tickets on an autocommit connection of the owner until none is left or the budget is spent;
    returns (tickets numbered, whether any is left)."""
    deadline = time.monotonic() + budget_seconds
    numbered = 0
    # A schema older than sql/0025 (a test's migrations folder at an earlier release) has nothing to number.
    present = conn.execute("SELECT to_regprocedure('public.backfill_ticket_references(integer)') IS NOT NULL")
    if not (row := present.fetchone()) or not row[0]:
        return 0, False
    while True:
        with conn.transaction():
            row = conn.execute("SELECT public.backfill_ticket_references(%s)", (batch,)).fetchone()
        done = int(row[0]) if row else 0
        if done == 0:
            break
        numbered += max(done, 0)
        if time.monotonic() >= deadline:
            log(f"ticket references: {numbered:,} numbered; the budget is spent, the next migrate goes on")
            return numbered, True
    if numbered:
        log(f"ticket references: {numbered:,} old tickets numbered")
    return numbered, False
