"""A webhook fan-out (issue 20): 1,000 events to 10 endpoints, delivered within 30 s to a local receiver.

    .venv/bin/python -m bench.webhooks [--events 1000] [--endpoints 10] [--workers 4]

On an embedded PostgreSQL (or DATABASE_URL), as the runtime role under row-level security: one tenant with
`--endpoints` endpoints subscribed to ticket.created (http://127.0.0.1 receivers: WEBHOOKS_ALLOW_LOCAL_HTTP, as
make run sets it) writes `--events` tickets in one statement, so the capture trigger writes events x endpoints
deliveries. Timed from there: one dispatch (support.services.webhooks.dispatch, as the request path's kick runs it)
hands them to SQS (moto in server mode, a process of its own), and `--workers` processes of local.sqs (Lambda's
event source mapping, one batch at a time each, as one execution environment) run WebhookDeliveryFunction's real
handler, which signs each delivery in the database and POSTs it to the receiver (a threaded http.server in a process
of its own). The clock stops when every delivery is `delivered`. Before the figure counts, it checks what it timed:
every row delivered on its first attempt, the receiver got exactly one POST per delivery id, and every signature
verifies with its endpoint's secret. Target: within 30 s for 1,000 x 10.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

from bench import VISITOR_TOKEN_SECRET, handler_environment

TARGET_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_receiver(port: int, secrets_file: Path) -> None:
    """The receiver (`--receiver PORT --secrets FILE`): answers 200 to every POST, counts them by delivery id, checks
    each signature with its endpoint's secret (the path names the endpoint), and answers GET /stats."""
    secrets = json.loads(secrets_file.read_text())
    lock = threading.Lock()
    seen: dict[str, int] = {}
    bad: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            secret = secrets.get(self.path.rsplit("/", 1)[-1], "")
            parts = dict(part.split("=", 1) for part in self.headers["X-Support-Signature"].split(","))
            expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
            with lock:
                delivery = self.headers["X-Support-Delivery"]
                seen[delivery] = seen.get(delivery, 0) + 1
                if not hmac.compare_digest(expected, parts.get("v1", "")):
                    bad.append(delivery)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with lock:
                answer = json.dumps(
                    {"posts": sum(seen.values()), "distinct": len(seen), "bad_signatures": len(bad)}
                ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    http.server.ThreadingHTTPServer.request_queue_size = 256  # bursts of concurrent POSTs are not refused
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def _stats(port: int) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
        stats: dict[str, int] = json.loads(answer.read())
        return stats


def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="delivery function processes (its concurrency)")
    parser.add_argument("--receiver", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--secrets", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver is not None:
        serve_receiver(args.receiver, args.secrets)
        return
    handler_environment(VISITOR_TOKEN_SECRET=VISITOR_TOKEN_SECRET)
    os.environ["WEBHOOKS_ALLOW_LOCAL_HTTP"] = "true"
    os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "60000")  # the set-up's bulk writes, on a loaded machine

    from local import ses
    from local import sqs as local_sqs
    from local.database import connected_as, database

    moto = ses.start_process()  # SQS in a process of its own, as a remote service is
    try:
        local_sqs.configure_environment(moto.endpoint)
        queue = local_sqs.create_queue(moto.endpoint, f"bench-webhooks-{uuid4().hex[:8]}")
        os.environ["WEBHOOK_QUEUE_URL"] = queue.url
        with database("webhooks", purpose="bench", recreate=True, quiet=True) as urls, connected_as(urls.app):
            os.environ["DATABASE_URL"] = urls.app
            passed = _run(args, queue.url, urls.admin)
    finally:
        moto.stop()
    if not passed:
        raise SystemExit("a check failed (FAIL above): the figures are not worth recording")


def _run(args: argparse.Namespace, queue_url: str, admin_url: str) -> bool:
    import tempfile

    import psycopg

    from support.auth import Principal, Role
    from support.config import get_settings
    from support.db import tenant_transaction
    from support.models.webhooks import WebhookCreate, WebhookEvent
    from support.services import webhooks

    get_settings.cache_clear()
    tenant = uuid4()
    admin = Principal(tenant_id=tenant, role=Role.ADMIN, subject="bench")
    port = _free_port()
    made = [
        webhooks.create_endpoint(
            admin, WebhookCreate(url=f"http://127.0.0.1:{port}/{n}", events=[WebhookEvent.TICKET_CREATED])
        )
        for n in range(args.endpoints)
    ]
    folder = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    secrets_file = folder / "secrets.json"
    secrets_file.write_text(json.dumps({str(n): hook.secret for n, hook in enumerate(made)}))
    env = os.environ.copy()
    processes = [
        subprocess.Popen(  # noqa: S603 (our own modules)
            [sys.executable, "-m", "bench.webhooks", "--receiver", str(port), "--secrets", str(secrets_file)], env=env
        )
    ]
    processes += [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "local.sqs", "--queue-url", queue_url, "--function", "WebhookDeliveryFunction"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]
    try:
        _wait_for_port(port)
        time.sleep(3)  # the workers' cold starts (their imports), not part of the figure
        total = args.events * args.endpoints
        for first in range(1, args.events + 1, 100):  # 100 tickets a statement: the capture trigger's batch
            with tenant_transaction(tenant) as cur:
                cur.execute(
                    """INSERT INTO support_tickets (user_id, customer_name, customer_email, subject)
                    SELECT %s, 'Bench Customer', 'bench@example.com', 'Webhook fan-out ' || n
                    FROM generate_series(%s::integer, %s::integer) AS n""",
                    (tenant, first, min(args.events, first + 99)),
                )
        started = time.perf_counter()
        queued = webhooks.dispatch(tenant, limit=total)
        dispatched = time.perf_counter() - started
        delivered = 0
        while time.perf_counter() - started < 10 * TARGET_SECONDS:
            with psycopg.connect(admin_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE state = 'delivered'), count(*) FROM webhook_deliveries"
                    " WHERE user_id = %s",
                    (tenant,),
                ).fetchone()
            delivered = row[0] if row else 0
            if delivered >= total:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        with psycopg.connect(admin_url) as conn:
            first = conn.execute(
                "SELECT count(*) FROM webhook_deliveries WHERE user_id = %s AND state = 'delivered' AND attempts = 1",
                (tenant,),
            ).fetchone()
        stats = _stats(port)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)

    checks = [
        (f"{queued} deliveries queued, {total} expected", queued == total),
        (
            f"{delivered} of {total} delivered, each on its first attempt ({first[0] if first else 0})",
            delivered == total and bool(first) and first[0] == total,
        ),
        (
            f"the receiver got {stats['posts']} POSTs for {stats['distinct']} delivery ids",
            stats["posts"] == total and stats["distinct"] == total,
        ),
        (f"{stats['bad_signatures']} signatures did not verify", stats["bad_signatures"] == 0),
    ]
    for text, ok in checks:
        print(f"check: {text} {'PASS' if ok else 'FAIL'}")
    target = "PASS" if elapsed <= TARGET_SECONDS else "FAIL"
    print()
    print("| measure | seconds | target |")
    print("| --- | ---: | --- |")
    print(f"| dispatch: {total} deliveries handed to SQS (moto) | {dispatched:.2f} | |")
    print(
        f"| fan-out: {args.events} events x {args.endpoints} endpoints delivered ({args.workers} workers) "
        f"| {elapsed:.2f} | <= {TARGET_SECONDS:.0f} s {target} |"
    )
    return all(ok for _, ok in checks)


if __name__ == "__main__":
    main()
