"""The ticket references' backfill (sql/0025) at the bench's size: the big tenant's 1,000,000 tickets numbered in
batches after the upgrade, while tickets are being created.

Run after `python -m bench.tickets` has seeded its database (it uses the same one, and leaves it as it found it:
the references given back in the same order, the created tickets deleted, the table vacuumed):

    python -m bench.references [--tickets N] [--batch 5000]

It puts the big tenant back as sql/0025 finds a tenant (no references, its range reserved, a backfill row), then
runs support.db.references.backfill_references as the migrate function does, while another connection creates a
ticket of the same tenant every 0.2 s (as the owner: the tenant is at the ticket cap, where the API answers 409).
It checks, not only times: the old tickets get #1001.. in the order they were created, the created ones a
reference above the range, updated_at and the running totals do not move, and no create waited for a batch.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any
from uuid import UUID, uuid5

import psycopg

from bench import seed as seeding
from support.db.references import backfill_references

CREATE_EVERY_S = 0.2
CREATE_SQL = """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)
VALUES (%s, 'During the backfill', 'during@example.com', 'Created during the backfill') RETURNING id, reference"""
FINGERPRINT_SQL = """SELECT count(*), count(reference), sum(extract(epoch FROM updated_at))::numeric(30, 6)
FROM support_tickets WHERE user_id = %s"""
ORDER_SQL = """SELECT count(*) FILTER (WHERE reference <> 1000 + rn) AS out_of_order, max(reference) AS highest
FROM (SELECT reference, row_number() OVER (ORDER BY created_at, id) AS rn FROM support_tickets
      WHERE user_id = %s AND reference <= %s) t"""
TOTALS_SQL = "SELECT * FROM ticket_totals WHERE user_id = %s ORDER BY status, priority, category, channel"


def _tenant(conn: psycopg.Connection[Any], tenant: UUID) -> None:
    conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))


def run(urls: Any, tenant: UUID, batch: int) -> int:
    with psycopg.connect(urls.admin, autocommit=True) as admin:
        _tenant(admin, tenant)
        totals_before = admin.execute(TOTALS_SQL, (tenant,)).fetchall()
        started = time.perf_counter()
        admin.execute("UPDATE support_tickets SET reference = NULL WHERE user_id = %s", (tenant,))
        row = admin.execute(
            "UPDATE ticket_reference_counters SET last_reference = 1000 + (SELECT count(*) FROM support_tickets"
            " WHERE user_id = %s) WHERE user_id = %s RETURNING last_reference",
            (tenant, tenant),
        ).fetchone()
        assert row is not None
        ceiling = int(row[0])
        admin.execute("DELETE FROM ticket_reference_backfill WHERE user_id = %s", (tenant,))
        admin.execute(
            "INSERT INTO ticket_reference_backfill (user_id, next_reference, ceiling) VALUES (%s, 1001, %s)",
            (tenant, ceiling),
        )
        admin.execute("VACUUM (ANALYZE) support_tickets")
        print(f"setup: {ceiling - 1000:,} tickets as before sql/0025 in {time.perf_counter() - started:.0f} s")
        before = admin.execute(FINGERPRINT_SQL, (tenant,)).fetchone()

    stop = threading.Event()
    created: list[tuple[UUID, int, float]] = []

    def create_meanwhile() -> None:
        with psycopg.connect(urls.owner, autocommit=True) as conn:
            _tenant(conn, tenant)
            while not stop.is_set():
                t0 = time.perf_counter()
                got = conn.execute(CREATE_SQL, (tenant,)).fetchone()
                assert got is not None
                created.append((got[0], int(got[1]), time.perf_counter() - t0))
                stop.wait(CREATE_EVERY_S)

    creator = threading.Thread(target=create_meanwhile)
    creator.start()
    started = time.perf_counter()
    try:
        with psycopg.connect(urls.owner, autocommit=True) as owner:
            numbered, left = backfill_references(owner, batch=batch, budget_seconds=3600, log=lambda _m: None)
    finally:
        stop.set()
        creator.join()
    seconds = time.perf_counter() - started

    failures = []
    with psycopg.connect(urls.admin, autocommit=True) as admin:
        _tenant(admin, tenant)
        order = admin.execute(ORDER_SQL, (tenant, ceiling)).fetchone()
        assert order is not None
        if order[0] or order[1] != ceiling or numbered != ceiling - 1000 or left:
            failures.append(f"old tickets: {order[0]} out of order, highest {order[1]}, numbered {numbered:,}")
        references = [reference for _, reference, _ in created]
        if any(r <= ceiling for r in references) or len(set(references)) != len(references):
            failures.append(f"a ticket created meanwhile got {references}")
        admin.execute("DELETE FROM support_tickets WHERE id = ANY(%s)", ([ticket for ticket, _, _ in created],))
        after = admin.execute(FINGERPRINT_SQL, (tenant,)).fetchone()
        assert before is not None
        assert after is not None
        if (after[0], after[2]) != (before[0], before[2]) or after[1] != after[0]:
            failures.append(f"updated_at or the count moved: {before} -> {after}")
        if admin.execute(TOTALS_SQL, (tenant,)).fetchall() != totals_before:
            failures.append("the running totals moved")
        admin.execute("VACUUM (ANALYZE) support_tickets")

    waits = sorted(wait for _, _, wait in created)
    print(
        f"ticket references backfill: {numbered:,} tickets in {seconds:.1f} s ({numbered / seconds:,.0f} tickets/s,"
        f" batches of {batch:,}: {seconds / max(1, numbered / batch) * 1000:.0f} ms each);"
        f" {len(created)} tickets created meanwhile, their insert p50 {waits[len(waits) // 2] * 1000:.1f} ms,"
        f" max {waits[-1] * 1000:.1f} ms"
        if waits
        else f"ticket references backfill: {numbered:,} tickets in {seconds:.1f} s"
    )
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


def create_cost(urls: Any, tenant: UUID, rounds: int) -> None:
    """What the reference costs a create: support.services.tickets.create_ticket as the runtime role, timed in
    alternating blocks with the reference triggers enabled and disabled (as the superuser), so that the machine's
    load hits both alike. The created tickets are deleted afterwards."""
    import statistics

    from local.database import connected_as
    from support.auth import Principal, Role
    from support.models.tickets import TicketCreate
    from support.services import tickets

    principal = Principal(tenant_id=tenant, role=Role.ADMIN, subject="bench")
    body = TicketCreate.model_validate({"customerName": "Ada", "customerEmail": "a@example.com", "subject": "Cost"})
    timings: dict[bool, list[float]] = {True: [], False: []}
    made: list[UUID] = []
    with psycopg.connect(urls.admin, autocommit=True) as admin, connected_as(urls.app):
        _tenant(admin, tenant)
        try:
            for block in range(rounds * 2):
                enabled = block % 2 == 0
                action = "ENABLE" if enabled else "DISABLE"
                for trigger in ("support_tickets_reference", "support_tickets_reference_counters"):
                    admin.execute(f"ALTER TABLE support_tickets {action} TRIGGER {trigger}".encode())
                for n in range(25):
                    t0 = time.perf_counter()
                    made.append(tickets.create_ticket(principal, body).id)
                    if n >= 5:  # the first few after an ALTER re-plan
                        timings[enabled].append(time.perf_counter() - t0)
        finally:
            for trigger in ("support_tickets_reference", "support_tickets_reference_counters"):
                admin.execute(f"ALTER TABLE support_tickets ENABLE TRIGGER {trigger}".encode())
            admin.execute("DELETE FROM support_tickets WHERE id = ANY(%s)", (made,))
    on, off = (statistics.median(timings[k]) * 1000 for k in (True, False))
    print(
        f"create (tickets.create_ticket, tenant {tenant}): p50 {on:.2f} ms with the reference triggers,"
        f" {off:.2f} ms without ({on - off:+.2f} ms), {len(timings[True])} calls each, alternating blocks"
    )


def main(argv: list[str] | None = None) -> int:
    from local.database import database

    parser = argparse.ArgumentParser(prog="python -m bench.references", description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=seeding.DEFAULT_TICKETS, help="tickets of the big tenant")
    parser.add_argument("--batch", type=int, default=5_000, help="tickets per transaction")
    parser.add_argument("--create-rounds", type=int, default=10, help="blocks of creates with and without, each")
    args = parser.parse_args(argv)
    with database(seeding.database_name(args.tickets), purpose=seeding.purpose(args.tickets), quiet=True) as urls:
        if args.create_rounds:
            create_cost(urls, uuid5(seeding._NAMESPACE, "tenant/other-1"), args.create_rounds)
        return run(urls, seeding.BIG_TENANT, args.batch)


if __name__ == "__main__":
    raise SystemExit(main())
