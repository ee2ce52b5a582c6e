"""What draining the email outbox costs (issue 17): 1,000 queued notifications sent through SES, here moto in server
mode on 127.0.0.1 (local.ses), in a process of its own.

    .venv/bin/python -m bench.email_outbox [--notifications 1000]

On an embedded PostgreSQL (or DATABASE_URL), as the runtime role under row-level security: one tenant with email
settings creates that many tickets through the tickets service (each enqueues its `received` notice in the
ticket's own transaction), then one drain (support.services.email_outbox.drain, as EmailOutboxFunction runs it)
sends them all. Target: within 10 s for 1,000. Before the figure counts, it checks what it timed: every row
`sent`, once, and moto holds exactly one mail per notification, each with its own Message-ID.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from uuid import uuid4

TARGET_SECONDS_PER_1000 = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.email_outbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "support")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SupportDesk")
    os.environ.setdefault("VISITOR_TOKEN_SECRET", "bench-visitor-key-" + "x" * 32)

    from local import ses
    from local.database import connected_as, database

    server = ses.start_process()  # SES in a process of its own, as a remote service is
    try:
        ses.configure_environment(server.endpoint)
        with database("email_outbox", purpose="bench", recreate=True, quiet=True) as urls, connected_as(urls.app):
            passed = _run(args.notifications, server.endpoint, urls.admin)
    finally:
        server.stop()
    if not passed:
        raise SystemExit("a check failed (FAIL above): the figures are not worth recording")


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _run(count: int, endpoint: str, admin_url: str) -> bool:
    import psycopg

    from local import ses
    from support.auth import Principal, Role
    from support.models.settings import EmailSettings
    from support.models.tickets import TicketCreate
    from support.services import email_outbox, settings, tickets

    tenant = uuid4()
    domain = f"bench-{tenant.hex[:8]}.example"
    ses.verify_senders(endpoint, [domain])
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="bench-admin")
    settings.put_email_settings(admin, EmailSettings(from_name="Bench Desk", from_address=f"desk@{domain}"))

    started = time.perf_counter()
    for n in range(count):
        tickets.create_ticket(
            admin,
            TicketCreate(customer_name=f"Customer {n}", customer_email=f"c{n}@customers.example", subject=f"Order {n}"),
        )
    enqueue_seconds = time.perf_counter() - started

    before = len(ses.sent_mail(endpoint))
    started = time.perf_counter()
    result = email_outbox.drain(time_budget_seconds=600)
    drain_seconds = time.perf_counter() - started

    with psycopg.connect(admin_url) as conn:
        states = dict(
            conn.execute(
                "SELECT state, count(*) FROM email_outbox WHERE user_id = %s GROUP BY state", (tenant,)
            ).fetchall()
        )
        attempts = conn.execute("SELECT max(attempts) FROM email_outbox WHERE user_id = %s", (tenant,)).fetchone()
    mails = [m for m in ses.sent_mail(endpoint)[before:] if m.source == f"desk@{domain}"]
    sent_once = states == {"sent": count} and attempts == (1,) and result.sent == count
    print(f"check: {count} notifications, each sent once: {states}, {result} {_verdict(sent_once)}")
    distinct = len(mails) == count and len({m.message["Message-ID"] for m in mails}) == count
    print(f"check: moto holds {len(mails)} mails with distinct Message-IDs {_verdict(distinct)}")

    target = TARGET_SECONDS_PER_1000 * count / 1000
    load = os.getloadavg()[0]
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {count} notifications, load average {load:.2f}")
    print("| case | seconds | per mail ms | target |\n|---|---:|---:|---|")
    print(
        f"| enqueue: {count} tickets created, each with its notice | {enqueue_seconds:.2f} | "
        f"{enqueue_seconds * 1000 / count:.2f} | |"
    )
    print(
        f"| drain: {count} notifications sent through SES (moto) | {drain_seconds:.2f} | "
        f"{drain_seconds * 1000 / count:.2f} | within {target:.0f} s {_verdict(drain_seconds <= target)} |"
    )
    return sent_once and distinct


if __name__ == "__main__":
    main()
