"""What receiving an inbound email costs (issue 17): parsing AND storing a 50 KB text message, as the email function
does it (support.services.email_in).

    .venv/bin/python -m bench.email_in [--iterations 200] [--warmup 20] [--check]

On an embedded PostgreSQL (or DATABASE_URL), as the runtime role under row-level security, one tenant with an
inbound address and a sender (so each new ticket enqueues its `received` notice, as in production). The message is
bench.email_parse's `text 50 KB` case (quoted-printable UTF-8, a short answer on a long quoted thread), each call
with a Message-ID of its own. Timed with `time.perf_counter`, one call at a time:

* `parse + store, new ticket`: `receive_message` with the raw bytes in hand: parse, the tenant of the receiving
  address, and the tenant's transaction (the message recorded once, the ticket with its contact, the customer
  message, the outbox row). The issue's figure: p50 <= 20 ms;
* `parse + store, reply threaded`: the same message answering a desk mail (In-Reply-To its Message-ID): threaded
  onto the ticket as a customer message;
* `whole function, new ticket`: EmailInboundFunction's handler with SES's receipt event, the message read from S3
  (moto in server mode in a process of its own, as a remote service is).

Before the figures count it checks what it timed: every call created or threaded as it should, one inbound row per
call, each new ticket holding the answer on top (not the quoted thread) as its text; a failed check exits 2.
`--check` exits 1 when the issue's case misses its target.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from bench import VISITOR_TOKEN_SECRET, handler_environment
from bench.timing import p95

TARGET_MS = 20.0
BUCKET = "bench-inbound"
ORIGINAL_ID = b"<bench-5f0e3b1c@gmx.example>"
ORIGINAL_REPLY_TO = b"<ticket-10471.m9@support.shop.example>"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.email_in", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200, help="timed calls per case (200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per case first (20)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the issue's case misses its target")
    args = parser.parse_args()
    handler_environment(POWERTOOLS_LOG_LEVEL="WARNING", VISITOR_TOKEN_SECRET=VISITOR_TOKEN_SECRET)

    from local import s3, ses
    from local.database import connected_as, database

    server = ses.start_process()
    try:
        s3.configure_environment(server.endpoint)
        os.environ["INBOUND_EMAIL_BUCKET"] = BUCKET
        s3.client(server.endpoint).create_bucket(Bucket=BUCKET)
        with database("email_in", purpose="bench", recreate=True, quiet=True) as urls, connected_as(urls.app):
            return _run(args, server.endpoint, urls.admin)
    finally:
        server.stop()


def _run(args: argparse.Namespace, endpoint: str, admin_url: str) -> int:
    import psycopg

    from bench.email_parse import ANSWER, build_cases
    from local import s3
    from local.gateway import LambdaContext
    from local.sample_events import ses_receipt_event
    from support.auth import Principal, Role
    from support.mail.ses import SesReceipt
    from support.models.settings import EmailSettings
    from support.services import email_in, settings

    tenant = uuid4()
    address = f"desk-{tenant.hex[:10]}@inbound.desk.example"
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="bench-admin")
    settings.put_email_settings(
        admin, EmailSettings(inbound_addresses=[address], from_address="support@bench.example", from_name="Bench")
    )
    raw = build_cases()[0].raw  # "text 50 KB"
    assert ORIGINAL_ID in raw
    assert ORIGINAL_REPLY_TO in raw
    config = email_in.InboundConfig(bucket=BUCKET)
    counter = iter(range(10**9))

    def message(reply_to: bytes | None = None) -> tuple[bytes, SesReceipt]:
        n = next(counter)
        body = raw.replace(ORIGINAL_ID, f"<bench-{n}-{tenant.hex[:8]}@gmx.example>".encode())
        if reply_to is not None:
            body = body.replace(ORIGINAL_REPLY_TO, reply_to)
        event = ses_receipt_event(
            body, message_id=f"ses{n:012d}", recipients=[address], received_at=datetime.now(UTC), function_arn="x"
        )
        (receipt,) = SesReceipt.from_event(event)
        return body, receipt

    def store(reply_to: bytes | None = None) -> email_in.InboundResult:
        body, receipt = message(reply_to)
        return email_in.receive_message(receipt, body, config, key=f"inbound/{receipt.ses_message_id}", size=len(body))

    # the ticket the replies answer, and the Message-ID of the desk's mail about it
    first = store()
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SELECT message_id FROM email_outbox WHERE ticket_id = %s", (first.ticket_id,)).fetchone()
    assert row is not None
    desk_mail = str(row[0]).encode()

    from functions.email_in import app

    s3_client = s3.client(endpoint)
    context = LambdaContext(function_name="EmailInboundFunction", memory_limit_in_mb=1024, timeout_seconds=60)

    def whole_function() -> email_in.InboundResult:
        body, receipt = message()
        s3_client.put_object(Bucket=BUCKET, Key=f"inbound/{receipt.ses_message_id}", Body=body)
        event = ses_receipt_event(
            body,
            message_id=receipt.ses_message_id,
            recipients=[address],
            received_at=datetime.now(UTC),
            function_arn="x",
        )
        started = time.perf_counter()
        answer = app.lambda_handler(event, context)
        whole_function.elapsed = time.perf_counter() - started  # type: ignore[attr-defined]
        result = answer["results"][0]
        return email_in.InboundResult(
            outcome=result["outcome"],
            ses_message_id=result["sesMessageId"],
            ticket_id=UUID(result["ticketId"]) if result["ticketId"] else None,
        )

    cases: list[tuple[str, Callable[[], email_in.InboundResult], str]] = [
        ("parse + store, new ticket", store, email_in.CREATED),
        ("parse + store, reply threaded", lambda: store(desk_mail), email_in.THREADED),
        ("whole function, new ticket", whole_function, email_in.CREATED),
    ]
    timings: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    outcomes: dict[str, list[email_in.InboundResult]] = {name: [] for name, _, _ in cases}
    for round_ in range(args.warmup + args.iterations):
        for name, call, _ in cases:  # one call of each per round: a shared machine's load falls on all alike
            started = time.perf_counter()
            result = call()
            elapsed = time.perf_counter() - started
            if call is whole_function:
                elapsed = whole_function.elapsed  # type: ignore[attr-defined]  # not the test's own S3 put
            if round_ >= args.warmup:
                timings[name].append(elapsed * 1000)
            outcomes[name].append(result)

    problems = _check(admin_url, tenant, cases, outcomes, first.ticket_id, ANSWER)
    for name, _, _ in cases:
        print(f"check {name}: {'OK' if name not in problems else 'FAIL: ' + problems[name]}", flush=True)
    if problems:
        return 2
    load = os.getloadavg()[0]
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, {len(raw):,} bytes, "
        f"{args.iterations} calls per case after {args.warmup} warm-up, load average {load:.2f}"
    )
    print("| case | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|")
    for name, values in timings.items():
        print(f"| {name} | {statistics.median(values):.2f} | {p95(values):.2f} | {max(values):.2f} |")
    p50 = statistics.median(timings[cases[0][0]])
    verdict = "PASS" if p50 <= TARGET_MS else "FAIL"
    print(f"\ntarget: parse and store a 50 KB text message p50 <= {TARGET_MS:.0f} ms; p50 {p50:.2f} ms: {verdict}")
    return 1 if args.check and verdict != "PASS" else 0


def _check(
    admin_url: str,
    tenant: UUID,
    cases: list[tuple[str, Callable[[], Any], str]],
    outcomes: dict[str, list[Any]],
    threaded_ticket: UUID | None,
    answer: str,
) -> dict[str, str]:
    import psycopg

    problems = {}
    for name, _, expected in cases:
        wrong = [r.outcome for r in outcomes[name] if r.outcome != expected]
        if wrong:
            problems[name] = f"{len(wrong)} calls were {sorted(set(wrong))}, not {expected}"
        elif expected == "threaded" and {r.ticket_id for r in outcomes[name]} != {threaded_ticket}:
            problems[name] = "a reply went onto another ticket"
    calls = 1 + sum(len(v) for v in outcomes.values())
    with psycopg.connect(admin_url) as conn:
        (stored,) = conn.execute("SELECT count(*) FROM inbound_emails WHERE user_id = %s", (tenant,)).fetchone() or (0,)
        texts = conn.execute(
            "SELECT DISTINCT description FROM support_tickets WHERE user_id = %s", (tenant,)
        ).fetchall()
    if stored != calls:
        problems["parse + store, new ticket"] = f"{stored} inbound rows for {calls} calls"
    if [t[0] for t in texts] != [answer]:
        problems["parse + store, new ticket"] = f"the tickets' text is not the answer on top: {texts[:1]!r}"
    return problems


if __name__ == "__main__":
    sys.exit(main())
