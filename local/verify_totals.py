"""`make verify-totals`: recount every tenant's running totals and agent figures from the rows, and report (or,
with `--repair`, mend) every difference. Runs against the database `make run` uses (or DATABASE_URL).

The recount itself is the database functions recount_tenant_day_totals (sql/0021) and recount_tenant_figures
(sql/0010_least_privilege.sql), run as the schema owner: a report in one REPEATABLE READ snapshot per tenant, a
repair in READ COMMITTED after locking the totals against writers. Exit status 1 when differences were found and
left unrepaired.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from uuid import UUID

import psycopg

# Every table a tenant's rows or figures live in; the superuser connection lists them past row-level security.
TENANTS = """SELECT user_id FROM support_tickets UNION SELECT user_id FROM support_agents
    UNION SELECT user_id FROM live_chat_sessions UNION SELECT user_id FROM ticket_feedback
    UNION SELECT user_id FROM ticket_totals UNION SELECT user_id FROM chat_totals
    UNION SELECT user_id FROM feedback_totals UNION SELECT user_id FROM ticket_day_totals
    UNION SELECT user_id FROM feedback_day_totals ORDER BY 1"""


def recount(owner_url: str, tenant: UUID, *, repair: bool) -> list[tuple[str, str, str | None, str | None]]:
    with psycopg.connect(owner_url) as conn:
        if not repair:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # the day totals first: their triggers fire first, so a repair locks in the writers' order (sql/0021)
        rows = conn.execute("SELECT * FROM recount_tenant_day_totals(%s, %s)", (tenant, repair)).fetchall()
        rows += conn.execute("SELECT * FROM recount_tenant_figures(%s, %s)", (tenant, repair)).fetchall()
        conn.commit()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def verify(owner_url: str, admin_url: str, *, repair: bool, tenant: UUID | None = None) -> int:
    """Prints what differs; returns the number of differences found."""
    if tenant is not None:
        tenants = [tenant]
    else:
        with psycopg.connect(admin_url) as conn:
            tenants = [row[0] for row in conn.execute(TENANTS)]
    found = 0
    for each in tenants:
        differences = recount(owner_url, each, repair=repair)
        found += len(differences)
        for figure, key, stored, recounted in differences:
            print(f"{each}  {figure} {key}: stored {stored or '(none)'}, rows say {recounted or '(none)'}")
    verb = "repaired" if repair else "found"
    print(f"{len(tenants)} tenant(s) recounted: {found} difference(s) {verb}", file=sys.stderr)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repair", action="store_true", help="rewrite the stored figures from the recount")
    parser.add_argument("--tenant", type=UUID, help="only this tenant")
    args = parser.parse_args()
    from local.database import database
    from local.run import DATA_DIR_VARIABLE, DEFAULT_DATA_DIR

    # The database `make run` serves (joined if it is running, started for the recount if not), or DATABASE_URL.
    data_dir = Path(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR)
    with database("support", purpose="run", data_dir=data_dir, quiet=True) as urls:
        found = verify(urls.owner, urls.admin, repair=args.repair, tenant=args.tenant)
    sys.exit(1 if found and not args.repair else 0)


if __name__ == "__main__":
    main()
