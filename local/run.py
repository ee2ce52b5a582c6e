"""`make run`: the local API on an embedded PostgreSQL, with demo data.

Starts PostgreSQL 16 (or uses DATABASE_URL), applies the migrations, loads the demo data, and serves every
route of template.yaml on http://127.0.0.1:3000 (PORT), its WebSocket API with the management API on
ws://127.0.0.1:3001 (WS_PORT, by default PORT + 1), and the demo shop with the chat widget on
http://localhost:3002 (MERCHANT_PORT, by default PORT + 2; the demo widget key is given that origin). All three
are checked before anything starts: a busy one is one line on stderr naming a free set, and exit status 1.
Ctrl-C or SIGTERM stops everything.

The data lives in `.local/pg-run` and persists between runs; `--data-dir DIR` (or SUPPORT_DATA_DIR=DIR)
picks another folder. A second `make run` on the same folder joins the PostgreSQL the first one runs (give
it another PORT); the last one to stop stops the database. `--reset` (`make reset-demo`) drops the database,
loads the demo data afresh and exits; a `make run` serving that folder keeps serving, from the new data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from local.template import REPO, cors_configuration, function_environment, http_routes

if TYPE_CHECKING:  # the gateway imports the layer, which must wait for the function environment (see main)
    from local.gateway import WebSocketEndpoints

DATA_DIR_VARIABLE = "SUPPORT_DATA_DIR"
DEMO_DAY_VARIABLE = "SUPPORT_DEMO_TODAY"
DEFAULT_DATA_DIR = REPO / ".local" / "pg-run"
DEFAULT_PORT = 3000
# WS_PORT and MERCHANT_PORT follow PORT unless given: one PORT moves the whole stack.
WS_PORT_OFFSET = 1
MERCHANT_PORT_OFFSET = 2


@dataclass(frozen=True)
class Ports:
    """The three listeners of make run, and which of them the environment named."""

    http: int
    websocket: int
    merchant: int
    given: frozenset[str] = frozenset()

    def named(self) -> list[tuple[str, int]]:
        return [("PORT", self.http), ("WS_PORT", self.websocket), ("MERCHANT_PORT", self.merchant)]


def _apply_function_environment() -> None:
    """The handlers see what template.yaml gives them in Lambda (the database settings are ours)."""
    for variables in function_environment().values():
        for name, value in variables.items():
            if name not in ("DATABASE_URL", "DB_SECRET_ARN"):
                os.environ.setdefault(name, value)
    # The template's VisitorTokenSecret, locally a key generated once under .local/ (local.visitor_key).
    from local.visitor_key import visitor_token_secret

    os.environ.setdefault("VISITOR_TOKEN_SECRET", visitor_token_secret())
    # Locally no CloudWatch reads the metrics (EMF documents on stdout): Powertools' own switch keeps them off the
    # terminal, and its warning about an invocation without metrics is ignored in the workers too (they inherit
    # PYTHONWARNINGS; `main` filters it in this process). In AWS nothing changes.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    quiet = "ignore:No application metrics to publish:UserWarning"
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), quiet)))


def _apply_local_endpoints(http_port: int, ws_port: int) -> None:
    """The AWS endpoints the handlers call, pointed at this machine's stand-ins (before any handler starts),
    so the production code (the fan-out's signed posts, the JWKS verifier) runs unchanged."""
    from local.jwt_keys import AUDIENCE, ISSUER

    os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"] = f"http://127.0.0.1:{ws_port}"
    # Lambda's Invoke API for the staff broadcast, served beside the management API; the function by its logical id
    os.environ["AWS_ENDPOINT_URL_LAMBDA"] = f"http://127.0.0.1:{ws_port}"
    os.environ["BROADCAST_FUNCTION_NAME"] = "BroadcastFunction"
    # and for the run of automation events after a change (support.services.automations), likewise
    os.environ["AUTOMATIONS_FUNCTION_NAME"] = "AutomationsFunction"
    # and for a privacy export or erasure after its request (support.services.privacy), likewise
    os.environ["PRIVACY_FUNCTION_NAME"] = "PrivacyJobFunction"
    # and for the dispatch of webhook deliveries after a change (support.services.webhooks), likewise
    os.environ["WEBHOOK_FUNCTION_NAME"] = "WebhookDeliveryFunction"
    os.environ["JWT_JWKS_URL"] = f"http://127.0.0.1:{http_port}/.well-known/jwks.json"
    os.environ["JWT_ISSUER"] = ISSUER
    os.environ["JWT_AUDIENCE"] = AUDIENCE
    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.run", description="The local support API (make run).")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR),
        help=f"the embedded PostgreSQL's data folder (default ${DATA_DIR_VARIABLE}, else .local/pg-run)",
    )
    parser.add_argument(
        "--reset", action="store_true", help="drop the database, load the demo data afresh, and exit (no server)"
    )
    return parser.parse_args(argv)


def _demo_day() -> date | None:
    """SUPPORT_DEMO_TODAY=YYYY-MM-DD: the day the demo history is seeded as if it were today (its two weeks end the
    day before), when it is first loaded; by default today. The examples of the README and docs/api.md are tested
    on such a day."""
    value = os.environ.get(DEMO_DAY_VARIABLE)
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"make run: {DEMO_DAY_VARIABLE} must be a day, YYYY-MM-DD, not {value!r}") from None


def _port_setting(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name) or str(default)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"make run: {name} must be a number from 1 to 65535, not {value!r}")
    return int(value)


def ports(env: Mapping[str, str]) -> Ports:
    """PORT (3000), WS_PORT (PORT + 1) and MERCHANT_PORT (PORT + 2): each as given, else following PORT."""
    http = _port_setting(env, "PORT", DEFAULT_PORT)
    if http > 65535 - MERCHANT_PORT_OFFSET and not (env.get("WS_PORT") and env.get("MERCHANT_PORT")):
        raise SystemExit(
            f"make run: PORT must be at most {65535 - MERCHANT_PORT_OFFSET} (WS_PORT and MERCHANT_PORT follow it)"
        )
    chosen = Ports(
        http=http,
        websocket=_port_setting(env, "WS_PORT", http + WS_PORT_OFFSET),
        merchant=_port_setting(env, "MERCHANT_PORT", http + MERCHANT_PORT_OFFSET),
        given=frozenset(name for name in ("WS_PORT", "MERCHANT_PORT") if env.get(name)),
    )
    if len({port for _, port in chosen.named()}) < 3:
        listed = ", ".join(f"{name}={port}" for name, port in chosen.named())
        raise SystemExit(f"make run: PORT, WS_PORT and MERCHANT_PORT must be three different ports ({listed})")
    return chosen


def busy_ports_message(chosen: Ports, is_taken: Callable[[int], bool]) -> str | None:
    """None if all three ports are free; else one line naming the busy ones and a set of three free ones."""
    busy = [(name, port) for name, port in chosen.named() if is_taken(port)]
    if not busy:
        return None
    listed = [f"{port} ({name})" for name, port in busy]
    which = f"port {listed[0]}" if len(listed) == 1 else f"ports {', '.join(listed[:-1])} and {listed[-1]}"
    verb = "is" if len(busy) == 1 else "are"
    start = chosen.http + 1
    while start <= 65535 - MERCHANT_PORT_OFFSET and any(
        is_taken(port) for port in (start, start + WS_PORT_OFFSET, start + MERCHANT_PORT_OFFSET)
    ):
        start += 1
    if start > 65535 - MERCHANT_PORT_OFFSET:
        return f"make run: {which} on 127.0.0.1 {verb} already in use (another make run?); choose other ports"
    suggestion = f"PORT={start}"
    if chosen.given:  # a WS_PORT or MERCHANT_PORT in the environment would not follow PORT
        suggestion += f" WS_PORT={start + WS_PORT_OFFSET} MERCHANT_PORT={start + MERCHANT_PORT_OFFSET}"
    return (
        f"make run: {which} on 127.0.0.1 {verb} already in use (another make run?); "
        f"choose another, e.g. {suggestion} make run ({start}, {start + WS_PORT_OFFSET} and "
        f"{start + MERCHANT_PORT_OFFSET} are free)"
    )


def _port_is_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops everything the way Ctrl-C does, at any point


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    data_dir = args.data_dir.expanduser().resolve()
    signal.signal(signal.SIGTERM, _interrupt)
    chosen = None if args.reset else ports(os.environ)
    # Before anything is started: a busy port must not cost anyone their database.
    if chosen is not None and (busy := busy_ports_message(chosen, _port_is_taken)):
        print(busy, file=sys.stderr)
        return 1
    # Powertools warns on every request that publishes no metric; locally that is only noise.
    warnings.filterwarnings("ignore", "No application metrics to publish")
    _apply_function_environment()
    if chosen is not None:
        _apply_local_endpoints(chosen.http, chosen.websocket)
    # Only now anything that imports the layer: Powertools reads its settings (the metrics namespace among
    # them) when the layer's logger and metrics are created, as at a Lambda cold start.
    from local.database import EmbeddedPostgresError

    try:
        return _serve(data_dir, chosen, reset=args.reset)
    except KeyboardInterrupt:
        print("stopping", flush=True)
        return 0
    except EmbeddedPostgresError as exc:
        print(f"make run: the database did not start: {exc}", file=sys.stderr)
        return 1


@contextmanager
def _broadcasts_in_process() -> Iterator[None]:
    """While the demo data loads: the gateway (and Lambda's Invoke API beside it) does not listen yet, and no one is
    connected to hear a staff broadcast, so the broadcasts its changes ask for run in this process (as with no
    broadcast function configured), not through an invocation that cannot reach the function. The same for the
    automation runs."""
    from support.config import get_settings

    names = {
        key: os.environ.pop(key, None)
        for key in ("BROADCAST_FUNCTION_NAME", "AUTOMATIONS_FUNCTION_NAME", "PRIVACY_FUNCTION_NAME")
    }
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, name in names.items():
            if name is not None:
                os.environ[key] = name
        get_settings.cache_clear()


def _serve(data_dir: Path, chosen: Ports | None, *, reset: bool) -> int:
    import psycopg

    from local.database import database

    given = bool(os.environ.get("DATABASE_URL"))
    with database("support", purpose="run", data_dir=data_dir, recreate=reset) as urls:
        os.environ["DATABASE_URL"] = urls.app  # handlers connect as the runtime role, under RLS
        # Imported once DATABASE_URL is set: the layer reads its configuration once, like a cold start.
        from local.demo_data import (
            follow_demo_shop_port,
            link_demo_contacts,
            roll_up_demo_history,
            seed_demo_data,
            seed_demo_history,
        )
        from local.gateway import create_app, running_gateway
        from local.gateway.dev_auth import dev_auth_routes
        from local.gateway.static import api_docs_routes, static_routes

        # One seeder at a time per database: two `make run` starting together must not both seed.
        with psycopg.connect(urls.owner, autocommit=True) as lock, _broadcasts_in_process():
            lock.execute("SELECT pg_advisory_lock(hashtext('local.demo_data'))")
            tenants = seed_demo_data()
            day = _demo_day()
            seed_demo_history(
                urls.owner, now=None if day is None else datetime.combine(day, datetime.now(UTC).time(), UTC)
            )
            # Its tickets and chats linked to their contacts, as the contacts backfill links a desk's old rows.
            link_demo_contacts()
            # The demo tenants' past two weeks, rolled up as the daily job would have (the dashboard's trends).
            roll_up_demo_history(urls.analytics_job, today=day)
        where = "the server DATABASE_URL names" if given else str(data_dir)
        if chosen is None:
            print(f"Demo data loaded afresh in {where}: " + ", ".join(f"{n} {t}" for n, t in tenants.items()))
            return 0
        # The demo shop is served on MERCHANT_PORT: its widget key allows that origin (added, not replacing, so a
        # make run on other ports beside this one keeps its shop working).
        follow_demo_shop_port(next(iter(tenants.values())), chosen.merchant)
        _log_gateway_reasons()
        with ExitStack() as stack:
            from local.ses import mail_routes

            ses_endpoint = _serve_local_ses(stack)  # before the gateway: its functions' processes inherit the endpoint
            _serve_local_s3(stack, ses_endpoint, data_dir)  # the same moto: inbound mail and its files
            _serve_local_sqs(stack, ses_endpoint)  # the same moto: the webhook deliveries' queue, and its poller
            try:
                base = stack.enter_context(
                    running_gateway(
                        create_app(
                            http_routes(),
                            cors=cors_configuration(),
                            extra_routes=[
                                *static_routes(),
                                *api_docs_routes(),
                                *dev_auth_routes(chosen.http),
                                *mail_routes(),
                            ],
                        ),
                        port=chosen.http,
                        access_log=True,
                    )
                )
            except RuntimeError:
                print(f"make run: could not listen on 127.0.0.1:{chosen.http}; choose another PORT", file=sys.stderr)
                return 1
            websocket = _serve_websocket_api(stack, chosen.websocket)
            _drain_email_outbox(stack)
            _sweep_workflow(stack)
            _print_welcome(base, tenants, where, joined=urls.joined)
            print(f"Mail the desk sent (local SES, moto on {ses_endpoint}): {base}/local/mail\n", flush=True)
            if websocket is not None:
                shop = _serve_merchant_page(stack, base, websocket.websocket_url, tenants, chosen.merchant)
                _print_chat_welcome(base, websocket.websocket_url, tenants, shop)
            while True:
                time.sleep(3600)


def _serve_local_ses(stack: ExitStack) -> str:
    """SES on this machine: moto in server mode on 127.0.0.1 (a free port), the functions pointed at it with
    AWS_ENDPOINT_URL_SES (boto3 reads it, so the production code runs unchanged), the demo desks' sender domains
    verified. The mail it accepts is listed at /local/mail (local.ses)."""
    from local import ses
    from local.demo_data import demo_sender_domains

    server = ses.start()
    stack.callback(server.stop)
    ses.configure_environment(server.endpoint)
    ses.verify_senders(server.endpoint, demo_sender_domains())
    return server.endpoint


def _serve_local_s3(stack: ExitStack, endpoint: str, data_dir: Path) -> None:
    """S3 on the same moto (local.s3): the functions pointed at it with AWS_ENDPOINT_URL_S3, the inbound mail bucket
    and the privacy exports' and the retention archive's buckets created, and the endpoint written beside the data
    folder for `make inbound-email`."""
    from local import s3

    s3.configure_environment(endpoint)
    s3.create_bucket(endpoint)
    s3.write_state(data_dir, endpoint)
    stack.callback(s3.forget_state, data_dir, endpoint)


def _serve_local_sqs(stack: ExitStack, endpoint: str) -> None:
    """SQS on the same moto (local.sqs): the functions pointed at it with AWS_ENDPOINT_URL_SQS, the webhook delivery
    queue and its dead-letter queue created, and a poller process that plays Lambda's event source mapping for
    WebhookDeliveryFunction. Webhook receivers on http://127.0.0.1 are allowed here (WEBHOOKS_ALLOW_LOCAL_HTTP: off in
    any deployed stack), so a receiver in a terminal sees the deliveries (docs/webhooks.md)."""
    from local import sqs

    sqs.configure_environment(endpoint)
    queue = sqs.create_webhook_queue(endpoint)
    os.environ["WEBHOOK_QUEUE_URL"] = queue.url
    os.environ["WEBHOOKS_ALLOW_LOCAL_HTTP"] = "true"
    arguments = ["--queue-url", queue.url, "--function", "WebhookDeliveryFunction"]
    if queue.dead_letter_url:
        arguments += ["--dead-letter-url", queue.dead_letter_url]
    _run_schedule(stack, "local.sqs", *arguments)


def _drain_email_outbox(stack: ExitStack) -> None:
    """The email outbox's schedule (every minute in AWS): local.email_drain invokes EmailOutboxFunction every few
    seconds, in a process of its own, stopped with make run."""
    _run_schedule(stack, "local.email_drain", "--every", "3")


def _sweep_workflow(stack: ExitStack) -> None:
    """The workflow sweep's schedule (EventBridge Scheduler, every minute, in AWS): local.workflow_sweep invokes
    WorkflowSweepFunction once a minute (the SLA warnings and breaches, the time-based automations and the pending
    automation events, the waiting chats past the wait limit, the retention policies' archive runs), in a process of its
    own, stopped with make run."""
    _run_schedule(stack, "local.workflow_sweep", "--every", "60")


def _run_schedule(stack: ExitStack, module: str, *arguments: str) -> None:
    """A schedule's loop (`python -m <module>`) in a process of its own, beside the gateway, stopped with make run."""
    import subprocess

    runner = subprocess.Popen([sys.executable, "-m", module, *arguments], cwd=REPO)

    def stop() -> None:
        runner.terminate()
        try:
            runner.wait(timeout=10)
        except subprocess.TimeoutExpired:
            runner.kill()

    stack.callback(stop)


def _serve_websocket_api(stack: ExitStack, ws_port: int) -> WebSocketEndpoints | None:
    """The template's WebSocket API and its management API beside the HTTP API; without them (their port
    taken, say by the make run this one joined) the HTTP API is served alone."""
    from local.gateway import running_template_websocket_api

    try:
        websocket = stack.enter_context(running_template_websocket_api(ws_port, access_log=True))
    except RuntimeError:
        print(
            f"make run: could not listen on 127.0.0.1:{ws_port} for the WebSocket API (another make run?); "
            "serving the HTTP API only; choose another WS_PORT",
            file=sys.stderr,
        )
        return None
    if websocket is not None:
        print(f"\nWebSocket API on {websocket.websocket_url}/?token=<token>", flush=True)
        print(f"Management API on {websocket.management_endpoint}/@connections/<connectionId>", flush=True)
    return websocket


def _print_chat_welcome(base: str, ws_url: str, tenants: dict[str, UUID], shop: str | None) -> None:
    """Two ready-to-paste commands, on every run: a visitor of the demo shop and the demo desk's agent Alan; and
    the demo widget key with how to change its origins. When a command cannot be given, the reason is."""
    from local.demo_data import demo_chat_identities
    from local.token import mint_token

    (name, tenant), *_ = tenants.items()
    identities = demo_chat_identities(tenant)
    if identities.widget_key is None or identities.agent is None:
        missing = "no live widget key" if identities.widget_key is None else "no agent"
        print(
            f"\nNo terminal chat commands: {name}'s desk has {missing} any more (make reset-demo restores the demo).\n",
            flush=True,
        )
        return
    origin = shop or f"http://localhost:{ports(os.environ).merchant}"
    print(f"\nChat live with {name}'s desk in two terminals: a visitor of its demo shop, and its agent Alan, whom")
    print("the client makes available, so he takes the chats waiting in the queue (the demo one, unless someone")
    print("took it on an earlier run) and then yours. Type to talk; /end ends:\n")
    print(
        f"  .venv/bin/python -m local.chat visitor --widget-key {identities.widget_key} --origin {origin} "
        f"--http {base} --ws {ws_url}"
    )
    print(
        f"  .venv/bin/python -m local.chat agent --tenant {tenant} --agent {identities.agent} "
        f"--http {base} --ws {ws_url}\n"
    )
    token = mint_token(str(tenant), "admin")
    print(f"Demo widget key: {identities.widget_key}, allowed origins: {', '.join(identities.allowed_origins)}")
    print("(make run adds MERCHANT_PORT's). Another page's origin, with an admin token (this one lasts an hour):\n")
    body = json.dumps({"allowedOrigins": [*identities.allowed_origins, "http://localhost:5173"]})
    print(
        f"  curl -sS -X PATCH -H {shlex.quote('Authorization: Bearer ' + token)} -H 'content-type: application/json'"
        f" -d {shlex.quote(body)} {base}/api/support/widgets/{identities.widget_key}\n",
        flush=True,
    )


def _serve_merchant_page(stack: ExitStack, base: str, ws_url: str, tenants: dict[str, UUID], port: int) -> str | None:
    """The demo shop's page with the chat widget, on its own origin (MERCHANT_PORT), and the console's URL.
    Answers the shop's origin, or None when it is not served."""
    from local.demo_data import demo_chat_identities
    from local.gateway import running_gateway
    from local.gateway.static import merchant_app

    print(f"Agent console: {base}/console/", flush=True)
    widget_key = demo_chat_identities(next(iter(tenants.values()))).widget_key
    if widget_key is None:
        print("make run: no demo shop page (the demo desk has no live widget key)", file=sys.stderr)
        return None
    try:
        shop = stack.enter_context(
            running_gateway(
                merchant_app(widget_key=widget_key, api_url=base, ws_url=ws_url), port=port, access_log=True
            )
        )
    except RuntimeError:
        print(
            f"make run: could not listen on 127.0.0.1:{port} for the demo shop; choose another MERCHANT_PORT",
            file=sys.stderr,
        )
        return None
    origin = shop.replace("127.0.0.1", "localhost")
    print(f"Demo shop with the chat widget: {origin}/", flush=True)
    return origin


def _log_gateway_reasons() -> None:
    """The gateway's own log beside uvicorn's access log: why a request got a 401 (the client only sees
    `www-authenticate`), a 413, or a handler's failure."""
    log = logging.getLogger("local.gateway")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _print_welcome(base: str, tenants: dict[str, UUID], where: str, *, joined: bool) -> None:
    from local.token import mint_token

    (first_name, first_tenant), *_ = tenants.items()
    token = mint_token(str(first_tenant), "admin")
    print(f"\nSupport API ready on {base}  (Ctrl-C to stop)")
    if joined:
        print(f"Database: the PostgreSQL another make run started in {where} (it stops when the last one stops)")
    else:
        print(f"Database: {where} (kept between runs; make reset-demo loads the demo data afresh)")
    print("Demo tenants: " + ", ".join(f"{name} {tenant}" for name, tenant in tenants.items()))
    print(f"\nList {first_name}'s tickets (the token lasts an hour):\n")
    print(f"  curl -sS -H {shlex.quote('Authorization: Bearer ' + token)} {base}/api/support/tickets\n")
    print("Another token: make token TENANT=<uuid> ROLE=admin|agent [AGENT=<uuid>] [TTL=<seconds>]\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
