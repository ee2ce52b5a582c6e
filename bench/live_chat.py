"""Live chat through the local gateway: many concurrent chats, a steady open-loop message load, checked; and a burst
of new chats before many staff connections, checked.

    python -m bench.live_chat                          # per-agent: 200 chats, 10,000 messages at 100 msg/s, a ramp
    python -m bench.live_chat --scenario per-chat      # 200 chats over 8 agents, a connection per chat (25 each)
    python -m bench.live_chat --scenario burst         # 200 staff connections, 100 new chats in one second
    python -m bench.live_chat --scenario all --check   # the three in one run; exit 2 when a target is missed
    python -m bench.live_chat --quick                  # smaller: 20 sessions, 400 messages at 50 msg/s, a short ramp

(with the project's interpreter, .venv/bin/python). The stack runs in a child process (`--serve`, started by the
bench), as `make run` wires it but on free ports and its own database (`live_chat` under `.local/pg-bench-chat`,
recreated each run; DATABASE_URL, when set, names the server to use instead): the HTTP API, the template's WebSocket
API (the production authorizer and WebSocket function in worker pools of LOCAL_LAMBDA_CONCURRENCY, `--concurrency`)
and the management API the function's fan-out posts to. The load generator is this process: one asyncio loop
holding every connection with the `websockets` asyncio client. One stack serves every scenario of a run, each on its
own tenant.

Scenarios (SCENARIOS: each its option defaults and its targets; an option on the command line wins):

* per-agent: a tenant with a widget key, `--agents` available agents whose capacity together covers the sessions
  (so every chat is assigned at once; by default one agent per chat), one widget session and one WebSocket per
  visitor, one connection per agent (as a console holds it). Targets: p50 8 ms and p99 40 ms at 100 msg/s, the
  ramp's highest rate with p99 within 100 ms at least 300 msg/s, the worker processes' CPU per message 2 ms.
* per-chat: the same with 8 agents and one agent connection per chat, each opened once its chat is assigned with
  `?sessionId=` (a console's chat window: it hears that chat alone, docs/websocket.md), so a message reaches its
  chat's window, and nothing else of the agent's. Targets: p50 20 ms, p99 100 ms. `--agent-connections session-all`
  opens the 25 connections of each agent before the chats, without a chat each: each then hears every chat of its
  agent (13 posts per message on average), as every connection did before chat windows existed (for comparison).
* burst: `--staff` staff connections of agents who are away (every new chat waits), then `--chats` visitors each
  sending startChat, evenly spread over `--burst-seconds` (open loop). Target: startChat to its chat.queued p99
  100 ms. Checked: every visitor's newest chat.queued position and every staff connection's newest queue.updated
  against the waiting sessions read over HTTP, within `--settle` seconds.

The message load: `--messages` sendMessage actions at `--rate` msg/s on a schedule fixed in advance (open loop: a
send never waits for an answer), each from a random session's visitor or agent. Checked, not only timed: every
message reaches every connection of the other side exactly once (none lost, none duplicated) and, per receiving
connection, each sender's messages arrive in the order sent. Any check that fails exits 1; with `--check`, a missed
target exits 2. Printed: the figures against each scenario's targets, the sender's own answer, the connect time
(authorizer included), the CPU time each part of the stack used, and a summary of every target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from tqdm import tqdm
from websockets.asyncio.client import ClientConnection, connect

REPO = Path(__file__).resolve().parent.parent
SHOP = "https://shop.example"
P50_TARGET_MS = 20.0
P99_TARGET_MS = 100.0
MAX_CAPACITY = 50  # an agent's maxConcurrentChats
CONNECT_PARALLEL = 16
VISITORS_PER_ADDRESS = 10  # well within the per-address limits (30 sessions, 60 connects at once)
SETUP_TIMEOUT = 120.0
SERVER_LOG = REPO / ".local" / "bench-chat-server.log"  # the stack's stderr (the gateway's errors)


# ------------------------------------------------------------------------------------------------ the stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(concurrency: int) -> int:
    """The child process: database, HTTP API, WebSocket API and management API; prints one JSON line with
    the addresses once everything listens, and serves until its standard input closes."""
    # The handshake goes to the bench on the stdout it gave us; everything else the stack writes (the functions'
    # JSON logs from the worker processes, which inherit fd 1 and 2) goes to the log file: a pipe that nobody
    # reads would fill and block the workers.
    handshake = os.fdopen(os.dup(1), "w")
    log = os.open(SERVER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    http_port, ws_port = _free_port(), _free_port()
    os.environ["LOCAL_LAMBDA_CONCURRENCY"] = str(concurrency)
    # A desk in steady use: the chat's functions run warm (provisioned concurrency in AWS), so no cold start of
    # one (about a second of CPU on these two cores) lands inside a measured phase; the connect figure has its own.
    os.environ.setdefault("LOCAL_LAMBDA_WARM", "WebSocketFunction,BroadcastFunction")
    os.environ.setdefault("WS_IDLE_TIMEOUT_SECONDS", "3600")
    from local.run import _apply_function_environment, _apply_local_endpoints

    _apply_function_environment()
    _apply_local_endpoints(http_port, ws_port)
    from local.database import database

    with database("live_chat", purpose="bench-chat", recreate=True, quiet=True) as urls:
        os.environ["DATABASE_URL"] = urls.app  # the runtime role, under row-level security, as make run
        from local.gateway import create_app, running_gateway, running_template_websocket_api
        from local.template import http_routes

        with (
            running_gateway(create_app(http_routes()), port=http_port) as base,
            running_template_websocket_api(ws_port) as endpoints,
        ):
            assert endpoints is not None
            print(json.dumps({"http": base, "ws": endpoints.websocket_url}), file=handshake, flush=True)
            handshake.close()
            sys.stdin.read()  # until the bench closes it (or dies)
    return 0


@dataclass
class Stack:
    process: subprocess.Popen[str]
    http: str
    ws: str


def start_stack(concurrency: int) -> Stack:
    SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
    # Powertools warns on every invocation that publishes no metric; locally that is only noise (as make run)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore:No application metrics to publish")
    process = subprocess.Popen(  # noqa: S603 - this interpreter and this module
        [sys.executable, "-m", "bench.live_chat", "--serve", "--concurrency", str(concurrency)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=SERVER_LOG.open("w"),
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"the stack did not start (exit {process.wait()}); see {SERVER_LOG}")
    info = json.loads(line)
    return Stack(process, info["http"], info["ws"])


def stop_stack(stack: Stack) -> None:
    assert stack.process.stdin is not None
    stack.process.stdin.close()
    try:
        stack.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stack.process.terminate()
        stack.process.wait(timeout=30)


# ------------------------------------------------------------------------------------- CPU accounting


def _cpu_seconds(pid: int) -> tuple[str, float, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return name, (int(fields[11]) + int(fields[12])) / ticks, int(fields[1])  # utime + stime, ppid


def _bench_postmaster() -> int | None:
    """The pid of the stack's own embedded PostgreSQL (its data directory's postmaster.pid), None when DATABASE_URL
    names another server."""
    if os.environ.get("DATABASE_URL"):
        return None
    try:
        return int((REPO / ".local" / "pg-bench-chat" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_by_part(gateway_pid: int) -> dict[str, float]:
    """CPU seconds so far of the load generator (this process), the gateway process, its worker processes
    and the stack's PostgreSQL: its embedded server's postmaster and backends (its children), so that a database of
    anything else on the machine is not counted; with DATABASE_URL (another server), every PostgreSQL process by
    name."""
    parts: dict[str, float] = defaultdict(float)
    postmaster = _bench_postmaster()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        got = _cpu_seconds(pid)
        if got is None:
            continue
        name, seconds, ppid = got
        if pid == os.getpid():
            parts["load generator"] += seconds
        elif pid == gateway_pid:
            parts["gateway (uvicorn, management API)"] += seconds
        elif ppid == gateway_pid:
            parts["worker processes (authorizer, functions)"] += seconds
        elif postmaster in (pid, ppid) if postmaster is not None else name in ("postgres", "postmaster"):
            parts["PostgreSQL"] += seconds
    return dict(parts)


# ------------------------------------------------------------------------------------------- the clients


@dataclass
class Conn:
    index: int
    side: str  # "visitor" or "agent"
    ws: ClientConnection
    connect_ms: float
    # (session, sender side) -> last seq seen on this connection, for the order check
    last_seq: dict[tuple[int, str], int] = field(default_factory=dict)
    received: dict[tuple[int, str, int], int] = field(default_factory=lambda: defaultdict(int))
    out_of_order: int = 0
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    log: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # every other event, with its arrival


@dataclass
class Chat:
    index: int
    session_id: str
    agent_id: str
    visitor: Conn
    agent: Conn  # the agent connection that handles this chat (latency is measured there)
    seq: dict[str, int] = field(default_factory=lambda: {"visitor": 0, "agent": 0})


class Tracker:
    """Send times, arrival times and the checks."""

    def __init__(self) -> None:
        self.sent: dict[tuple[int, str, int], float] = {}
        self.delivered: dict[tuple[int, str, int], float] = {}  # at the chat's designated other-side conn
        self.answered: dict[tuple[int, str, int], float] = {}  # the sender's own message.new
        self.chats: dict[int, Chat] = {}
        self.receivers: dict[tuple[int, str], list[Conn]] = {}  # (chat, receiving side) -> every conn
        self.foreign = 0  # message.new of a chat a connection should not hear about
        self.errors: list[dict[str, Any]] = []
        self.waiter: asyncio.Event = asyncio.Event()
        self.conns: list[Conn] = []  # every connection opened, closed at the end

    def on_message(self, conn: Conn, data: dict[str, Any], now: float) -> None:
        text = str(data.get("message", ""))
        if not text.startswith("bench "):
            return
        _, chat_s, sender, seq_s = text.split()
        chat, seq = int(chat_s), int(seq_s)
        key = (chat, sender, seq)
        if sender == conn.side:  # the sender's echo (to the sender's connections of the same side)
            if self.chats[chat].visitor is conn or self.chats[chat].agent is conn:
                self.answered.setdefault(key, now)
            return
        if conn not in self.receivers.get((chat, conn.side), []):
            self.foreign += 1
            return
        conn.received[key] += 1
        last = conn.last_seq.get((chat, sender), 0)
        if seq <= last:
            conn.out_of_order += 1
        conn.last_seq[(chat, sender)] = max(last, seq)
        designated = self.chats[chat].visitor if conn.side == "visitor" else self.chats[chat].agent
        if conn is designated and key not in self.delivered:
            self.delivered[key] = now
            self.waiter.set()


async def reader(conn: Conn, tracker: Tracker) -> None:
    try:
        async for raw in conn.ws:
            if not raw:  # an answer without a body (typing's route response) is an empty message
                continue
            now = time.perf_counter()
            event = json.loads(raw)
            kind = event.get("type")
            if kind == "message.new":
                tracker.on_message(conn, event["data"], now)
                continue
            conn.log.append((now, event))
            if kind == "error" or kind is None:  # None: API Gateway's own {"message": ...}
                tracker.errors.append(event)
                await conn.events.put(event)
            else:
                await conn.events.put(event)
    except Exception:  # noqa: S110 - a closed connection ends its reader; the checks see what is missing
        pass


async def expect(conn: Conn, kind: str, timeout: float = SETUP_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        event = await asyncio.wait_for(conn.events.get(), timeout=max(0.1, deadline - time.monotonic()))
        if event.get("type") == kind:
            return event
        if event.get("type") in ("error", None):
            raise RuntimeError(f"expected {kind}, got {event}")


def visitor_address(index: int) -> str:
    """The loopback address visitor `index` connects from: visitors come from many addresses, as on a real shop,
    and the desk's per-address limits on the widget session route and on $connect (support.services.rate_limits)
    count each address apart. Linux answers on all of 127.0.0.0/8."""
    return f"127.0.{1 + index // VISITORS_PER_ADDRESS // 250}.{2 + index // VISITORS_PER_ADDRESS % 250}"


async def open_conn(
    index: int, side: str, url: str, origin: str | None, tracker: Tracker, source: str | None = None
) -> Conn:
    started = time.perf_counter()
    ws = await connect(
        url,
        additional_headers={"Origin": origin} if origin else None,
        ping_interval=None,
        open_timeout=SETUP_TIMEOUT,
        max_queue=None,
        local_addr=(source, 0) if source else None,
    )
    conn = Conn(index, side, ws, (time.perf_counter() - started) * 1000)
    tracker.conns.append(conn)
    asyncio.get_running_loop().create_task(reader(conn, tracker))
    return conn


# --------------------------------------------------------------------------------------------- the bench


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class PhaseResult:
    rate: float
    keys: list[tuple[int, str, int]]
    latencies_ms: list[float]
    answers_ms: list[float]
    lag_ms: list[float]  # how late each send went out against its schedule
    undelivered: int


async def run_phase(
    tracker: Tracker, rate: float, count: int, rng: random.Random, label: str, drain_seconds: float
) -> PhaseResult:
    chats = list(tracker.chats.values())
    plan = []
    for _ in range(count):
        chat = rng.choice(chats)
        side = rng.choice(("visitor", "agent"))
        chat.seq[side] += 1
        plan.append((chat, side, chat.seq[side]))
    keys = [(c.index, side, seq) for c, side, seq in plan]
    lag: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    with tqdm(total=count, desc=f"{label}: sending at {rate:g} msg/s", unit="msg", leave=False, disable=None) as bar:
        for i, (chat, side, seq) in enumerate(plan):
            due = start + i / rate
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            lag.append(max(0.0, loop.time() - due) * 1000)
            conn = chat.visitor if side == "visitor" else chat.agent
            body = {
                "action": "sendMessage",
                "requestId": f"m{chat.index}-{side}-{seq}",
                "sessionId": chat.session_id,
                "message": f"bench {chat.index} {side} {seq}",
                "clientMessageId": f"{side}-{seq}",
            }
            tracker.sent[(chat.index, side, seq)] = time.perf_counter()
            await conn.ws.send(json.dumps(body))
            bar.update()
    deadline = time.monotonic() + drain_seconds
    with tqdm(total=count, desc=f"{label}: delivered", unit="msg", leave=False, disable=None) as bar:
        while True:
            done = sum(1 for k in keys if k in tracker.delivered)
            bar.n = done
            bar.refresh()
            if done == count or time.monotonic() > deadline:
                break
            tracker.waiter.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tracker.waiter.wait(), timeout=0.5)
    await asyncio.sleep(0.3)  # the other connections of the receiving side, and the answers, a moment more
    latencies = [(tracker.delivered[k] - tracker.sent[k]) * 1000 for k in keys if k in tracker.delivered]
    answers = [(tracker.answered[k] - tracker.sent[k]) * 1000 for k in keys if k in tracker.answered]
    return PhaseResult(rate, keys, latencies, answers, lag, count - len(latencies))


def check(tracker: Tracker, keys: list[tuple[int, str, int]]) -> list[str]:
    """Every message at every connection of the other side exactly once, in each sender's order."""
    problems = []
    lost = duplicated = 0
    conns: set[int] = set()
    for chat, sender, seq in keys:
        receiving = "agent" if sender == "visitor" else "visitor"
        for conn in tracker.receivers[(chat, receiving)]:
            conns.add(id(conn))
            got = conn.received.get((chat, sender, seq), 0)
            lost += got == 0
            duplicated += max(0, got - 1)
    out_of_order = sum(
        c.out_of_order for conns_ in tracker.receivers.values() for c in {id(x): x for x in conns_}.values()
    )
    unanswered = sum(1 for k in keys if k not in tracker.answered)
    if lost:
        problems.append(f"{lost} deliveries lost (a message that a connection of the other side never received)")
    if duplicated:
        problems.append(f"{duplicated} deliveries duplicated")
    if out_of_order:
        problems.append(f"{out_of_order} deliveries out of their sender's order")
    if tracker.foreign:
        problems.append(f"{tracker.foreign} message.new events at connections outside their chat")
    if unanswered:
        problems.append(f"{unanswered} messages not answered to their sender")
    if tracker.errors:
        problems.append(f"{len(tracker.errors)} error events, first: {tracker.errors[0]}")
    return problems


async def set_up(stack: Stack, args: argparse.Namespace, tracker: Tracker) -> tuple[list[Conn], dict[str, float]]:
    from local.token import mint_token

    timings: dict[str, float] = {}
    tenant = str(uuid4())
    capacity = -(-args.sessions // args.agents)
    if capacity > MAX_CAPACITY:
        raise SystemExit(f"{args.sessions} sessions over {args.agents} agents is {capacity} each, over {MAX_CAPACITY}")
    admin = {"Authorization": f"Bearer {mint_token(tenant, 'admin')}"}
    async with httpx.AsyncClient(base_url=stack.http, timeout=SETUP_TIMEOUT) as http:
        reply = await http.post("/api/support/widgets", json={"name": "Shop", "allowedOrigins": [SHOP]}, headers=admin)
        reply.raise_for_status()
        widget_key = reply.json()["data"]["widgetKey"]
        agent_ids = []
        for n in range(args.agents):
            body = {
                "agentName": f"Agent {n}",
                "agentEmail": f"agent{n}-{uuid4()}@desk.example",
                "maxConcurrentChats": capacity,
                "status": "available",
            }
            reply = await http.post("/api/support/agents", json=body, headers=admin)
            reply.raise_for_status()
            agent_ids.append(reply.json()["data"]["id"])
        started = time.perf_counter()
        limit = asyncio.Semaphore(CONNECT_PARALLEL)

        async def widget_session(index: int) -> dict[str, Any]:
            transport = httpx.AsyncHTTPTransport(local_address=visitor_address(index))
            async with limit, httpx.AsyncClient(base_url=stack.http, timeout=SETUP_TIMEOUT, transport=transport) as own:
                reply = await own.post(
                    "/api/support/widget/session", json={"widgetKey": widget_key}, headers={"Origin": SHOP}
                )
                reply.raise_for_status()
                return dict(reply.json()["data"])

        visitor_sessions = await asyncio.gather(*(widget_session(i) for i in range(args.sessions)))
        timings["widget sessions"] = time.perf_counter() - started

    # The agents' connections first, so each chat's assignment reaches them; a chat's own connection (`session`: a
    # console's chat window, `?sessionId=`) once its chat exists, after the starts
    windows = args.agent_connections == "session"
    per_agent = {"session": 0, "session-all": capacity}.get(args.agent_connections, 1)
    bar = tqdm(total=args.agents * per_agent + args.sessions, desc="connecting", unit="conn", leave=False, disable=None)

    async def open_limited(index: int, side: str, url: str, origin: str | None, source: str | None = None) -> Conn:
        async with limit:
            conn = await open_conn(index, side, url, origin, tracker, source)
            bar.update()
            return conn

    started = time.perf_counter()
    agent_conns: dict[str, list[Conn]] = {}
    tasks = []
    tokens = {agent_id: mint_token(tenant, "agent", agent_id=agent_id) for agent_id in agent_ids}
    for n, agent_id in enumerate(agent_ids):
        token = tokens[agent_id]
        for k in range(per_agent):
            tasks.append(open_limited(n * per_agent + k, "agent", f"{stack.ws}/?token={token}", None))
    opened = list(await asyncio.gather(*tasks))
    for n, agent_id in enumerate(agent_ids):
        agent_conns[agent_id] = list(opened[n * per_agent : (n + 1) * per_agent])
    visitors = await asyncio.gather(
        *(
            open_limited(i, "visitor", f"{stack.ws}/?visitorToken={s['connectToken']}", SHOP, visitor_address(i))
            for i, s in enumerate(visitor_sessions)
        )
    )
    bar.close()
    timings["connections"] = time.perf_counter() - started

    # Every visitor starts a chat; every one must be assigned at once
    started = time.perf_counter()
    free = {agent_id: list(conns) for agent_id, conns in agent_conns.items()}

    async def start(i: int, visitor: Conn) -> Chat:
        async with limit:
            await visitor.ws.send(json.dumps({"action": "startChat", "requestId": f"s{i}", "visitorName": f"V{i}"}))
            data = (await expect(visitor, "chat.started"))["data"]
        if data["status"] != "active" or not data.get("assignedAgentId"):
            raise SystemExit(f"chat {i} was not assigned at once: {data['status']}")
        agent_id = data["assignedAgentId"]
        if windows:  # the chat's own connection, which hears this chat alone
            token = tokens[agent_id]
            url = f"{stack.ws}/?token={token}&sessionId={data['id']}"
            async with limit:
                agent = await open_conn(len(agent_ids) + i, "agent", url, None, tracker)
            opened.append(agent)
            return Chat(i, data["id"], agent_id, visitor, agent)
        pool = free[agent_id]
        agent = pool.pop() if args.agent_connections == "session-all" else pool[0]
        return Chat(i, data["id"], agent_id, visitor, agent)

    chats = await asyncio.gather(
        *(start(i, v) for i, v in enumerate(tqdm(visitors, desc="starting chats", leave=False, disable=None)))
    )
    timings["chat starts"] = time.perf_counter() - started
    for chat in chats:
        tracker.chats[chat.index] = chat
        tracker.receivers[(chat.index, "visitor")] = [chat.visitor]
        tracker.receivers[(chat.index, "agent")] = [chat.agent] if windows else agent_conns[chat.agent_id]
    await asyncio.sleep(1.0)  # the chat.assigned events settle
    for conn in [*opened, *visitors]:
        while not conn.events.empty():
            conn.events.get_nowait()
    tracker.errors.clear()
    return [*opened, *visitors], timings


BURST_WARMERS = 16  # burst: visitors (beside the burst's) whose chats warm the queue's path before it


async def warm_the_queue(warmers: list[Conn]) -> None:
    """Every warmer starts a chat at once (each waits: the staff are away), then ends it; returns once all ended."""
    for k, warmer in enumerate(warmers):
        await warmer.ws.send(json.dumps({"action": "startChat", "requestId": f"w{k}", "visitorName": f"W{k}"}))
    started = [(await expect(w, "chat.started"))["data"]["id"] for w in warmers]
    for warmer, session_id in zip(warmers, started, strict=True):
        await warmer.ws.send(json.dumps({"action": "endChat", "requestId": "w-end", "sessionId": session_id}))
    for warmer in warmers:
        await expect(warmer, "chat.ended")


def _fmt(ms: float) -> str:
    return f"{ms:.1f}"


# ------------------------------------------------------------------------------------------- the scenarios

WORKERS = "worker processes (authorizer, functions)"  # cpu_by_part's name of the functions' processes
RAMP_P99_MS = 100.0  # a ramp step holds when its p99 is within this and it lost nothing
QUEUE_LIST_LIMIT = 100  # queue.updated lists the first 100 waiting sessions
DEFAULT_QUEUE_CAP = 50  # the chat settings' default queueCap, raised for a burst larger than it


@dataclass(frozen=True)
class Scenario:
    """A named measurement: its options' defaults (an option given on the command line wins), those of `--quick`,
    and its targets (None: no such target)."""

    name: str
    title: str
    defaults: dict[str, Any]
    quick: dict[str, Any]
    p50_ms: float | None = None
    p99_ms: float | None = None
    worker_cpu_ms: float | None = None  # the worker processes' CPU per message of the main phase
    ramp_rate: float | None = None  # the highest offered rate with p99 within RAMP_P99_MS, at least this
    queued_p99_ms: float | None = None  # burst: startChat sent until its chat.queued


MESSAGE_QUICK = {
    "sessions": 20,
    "messages": 400,
    "rate": 50.0,
    "warmup": 40,
    "ramp": [50.0, 100.0],
    "ramp_seconds": 3.0,
}
SCENARIOS: dict[str, Scenario] = {
    "per-agent": Scenario(
        "per-agent",
        "one connection per agent (a console), a visitor and an agent per chat",
        {
            "sessions": 200,
            "agents": None,  # one per session
            "agent_connections": "agent",
            "messages": 10_000,
            "rate": 100.0,
            "warmup": 200,
            "ramp": [100.0, 150.0, 200.0, 300.0],
            "ramp_seconds": 5.0,
        },
        MESSAGE_QUICK,
        p50_ms=8.0,
        p99_ms=40.0,
        worker_cpu_ms=2.0,
        ramp_rate=300.0,
    ),
    "per-chat": Scenario(
        "per-chat",
        "one connection per open chat: 8 agents with 25 chats and a chat window each",
        {
            "sessions": 200,
            "agents": 8,
            "agent_connections": "session",
            "messages": 10_000,
            "rate": 100.0,
            "warmup": 200,
            "ramp": [],
            "ramp_seconds": 5.0,
        },
        MESSAGE_QUICK | {"agents": 2, "ramp": []},
        p50_ms=20.0,
        p99_ms=100.0,
    ),
    "burst": Scenario(
        "burst",
        "staff connections on one tenant, no agent free, and a burst of new chats",
        {"staff": 200, "chats": 100, "burst_seconds": 1.0, "settle": 5.0},
        {"staff": 20, "chats": 10},
        queued_p99_ms=100.0,
    ),
}


def resolve(args: argparse.Namespace, scenario: Scenario) -> argparse.Namespace:
    """The scenario's options: what the command line gave, else `--quick`'s, else the scenario's defaults."""
    opts = argparse.Namespace(**vars(args))
    for name, value in scenario.defaults.items():
        if getattr(args, name) is None:
            setattr(opts, name, scenario.quick.get(name, value) if args.quick else value)
    if "agents" in scenario.defaults and opts.agents is None:
        opts.agents = opts.sessions
    opts.scenario = scenario.name
    return opts


@dataclass
class Target:
    figure: str
    value: float | None  # None: not measured in this run (e.g. --no-ramp)
    limit: float
    unit: str
    at_least: bool = False  # the value must reach the limit (a rate), not stay within it
    decimals: int = 1

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "not run"
        if math.isnan(self.value):
            return "FAIL"  # nothing measured (every message lost): the checks say why
        return "PASS" if (self.value >= self.limit if self.at_least else self.value <= self.limit) else "FAIL"

    def shown(self) -> str:
        if self.value is None:
            return "-"
        return f"{self.value:g} {self.unit}" if self.at_least else f"{self.value:.{self.decimals}f} {self.unit}"

    def row(self) -> str:
        bound = f"{'>=' if self.at_least else '<='} {self.limit:g} {self.unit}"
        return f"| {self.figure} | {self.shown()} | {bound} | {self.verdict} |"


@dataclass
class Outcome:
    scenario: str
    targets: list[Target]
    failures: list[str]  # the correctness checks' problems (exit 1)


async def close_all(tracker: Tracker) -> None:
    """Goodbyes, so the gateway runs every $disconnect before the next scenario (or the stack's end)."""
    await asyncio.gather(*(c.ws.close() for c in tracker.conns), return_exceptions=True)
    await asyncio.sleep(1.0)


async def run_messages(stack: Stack, opts: argparse.Namespace, scenario: Scenario) -> Outcome:
    """The message scenarios: chats set up and assigned, then the open-loop load, checked, and the ramp."""
    print(
        f"\n# Scenario {scenario.name}: {scenario.title}\n\n{opts.sessions} sessions, {opts.agents} agents, agent "
        f"connections: one per {opts.agent_connections}, {opts.messages} messages at {opts.rate:g} msg/s, "
        f"LOCAL_LAMBDA_CONCURRENCY={opts.concurrency}",
        flush=True,
    )
    tracker = Tracker()
    failures: list[str] = []
    targets: list[Target] = []
    try:
        conns, timings = await set_up(stack, opts, tracker)
        agents = sum(1 for c in conns if c.side == "agent")
        print(
            f"set-up: {len(conns)} connections ({agents} agent, {len(conns) - agents} visitor) in "
            f"{timings['connections']:.1f} s, {len(tracker.chats)} chats started and assigned in "
            f"{timings['chat starts']:.1f} s (widget sessions {timings['widget sessions']:.1f} s)"
        )
        connect_ms = [c.connect_ms for c in conns]
        print(
            f"connect (WebSocket open to handshake done, authorizer and $connect included, {CONNECT_PARALLEL} at "
            f"a time): p50 {_fmt(percentile(connect_ms, 50))} ms, p99 {_fmt(percentile(connect_ms, 99))} ms"
        )
        rng = random.Random(opts.seed)
        if opts.warmup:
            await run_phase(tracker, min(opts.rate, 50), opts.warmup, rng, "warm-up", opts.drain)
        cpu_before = cpu_by_part(stack.process.pid)
        wall = time.perf_counter()
        main = await run_phase(tracker, opts.rate, opts.messages, rng, "main", opts.drain)
        wall = time.perf_counter() - wall
        cpu_after = cpu_by_part(stack.process.pid)
        problems = check(tracker, main.keys)
        p50, p99 = percentile(main.latencies_ms, 50), percentile(main.latencies_ms, 99)
        worker_ms = (cpu_after.get(WORKERS, 0.0) - cpu_before.get(WORKERS, 0.0)) / max(1, opts.messages) * 1000
        if scenario.p50_ms is not None:
            targets.append(Target("send-to-delivery p50 (other side)", p50, scenario.p50_ms, "ms"))
        if scenario.p99_ms is not None:
            targets.append(Target("send-to-delivery p99 (other side)", p99, scenario.p99_ms, "ms"))
        if scenario.worker_cpu_ms is not None:
            targets.append(
                Target("worker CPU per message (main phase)", worker_ms, scenario.worker_cpu_ms, "ms", decimals=2)
            )
        fanout = sum(len(v) for v in tracker.receivers.values()) / max(1, len(tracker.receivers))
        print(f"\n## {opts.messages} messages at {opts.rate:g} msg/s offered ({wall:.1f} s including the drain)\n")
        print("| figure | value | target | result |\n|---|---:|---|---|")
        for target in targets:
            print(target.row())
        if scenario.worker_cpu_ms is None:
            print(f"| worker CPU per message (main phase) | {worker_ms:.2f} ms | - | |")
        print(f"| send-to-delivery max | {_fmt(max(main.latencies_ms, default=float('nan')))} ms | - | |")
        print(
            f"| sender's own answer p50 / p99 | {_fmt(percentile(main.answers_ms, 50))} / "
            f"{_fmt(percentile(main.answers_ms, 99))} ms | - | |"
        )
        print(f"| connect p50 (authorizer included) | {_fmt(percentile(connect_ms, 50))} ms | - | |")
        print(f"| send schedule lag p99 (load generator) | {_fmt(percentile(main.lag_ms, 99))} ms | - | |")
        print(f"| connections per receiving side (mean) | {fanout:.1f} | - | |")
        print("\nChecks over the main phase (every receiving connection of the other side):")
        delivered = sum(len(tracker.receivers[(c, "agent" if s == "visitor" else "visitor")]) for c, s, _ in main.keys)
        print(
            f"  {len(main.keys)} messages, {delivered} expected deliveries, {len(main.keys) - main.undelivered} "
            "reached their chat's designated connection"
        )
        for name, ok in (
            ("lost", not any("lost" in p for p in problems)),
            ("duplicated", not any("duplicated" in p for p in problems)),
            ("sender order", not any("order" in p for p in problems)),
            ("no foreign events", tracker.foreign == 0),
            ("every sender answered", not any("answered" in p for p in problems)),
        ):
            print(f"  check {name}: {'OK' if ok else 'FAILED'}")
        for problem in problems:
            print(f"  FAILED: {problem}")
        failures += problems
        print("\nCPU seconds during the main phase (2 cores = 2 CPU-seconds per second):")
        for part in sorted(cpu_after, key=lambda p: -(cpu_after[p] - cpu_before.get(p, 0.0))):
            used = cpu_after[part] - cpu_before.get(part, 0.0)
            print(
                f"  {part}: {used:.1f} s ({used / wall * 100:.0f} % of one core; "
                f"{used / max(1, opts.messages) * 1000:.2f} ms per message)"
            )
        best: float | None = None
        if opts.ramp:
            print(
                f"\n## Ramp\n\n| offered msg/s | messages | p50 ms | p99 ms | lost | p99 <= {RAMP_P99_MS:g} ms |\n"
                "|---:|---:|---:|---:|---:|---|"
            )
            best = 0.0
            for rate in opts.ramp:
                step = await run_phase(tracker, rate, int(rate * opts.ramp_seconds), rng, "ramp", opts.drain)
                step_problems = check(tracker, step.keys)
                failures += [f"ramp {rate:g}: {p}" for p in step_problems]
                ok = percentile(step.latencies_ms, 99) <= RAMP_P99_MS and not step.undelivered
                print(
                    f"| {rate:g} | {len(step.keys)} | {_fmt(percentile(step.latencies_ms, 50))} | "
                    f"{_fmt(percentile(step.latencies_ms, 99))} | {step.undelivered} | {'yes' if ok else 'no'} |",
                    flush=True,
                )
                if not ok:
                    break
                best = rate
            print(
                f"\nhighest offered rate with p99 within {RAMP_P99_MS:g} ms: "
                f"{f'{best:g} msg/s' if best else f'none of {opts.ramp[0]:g} and up'}"
            )
        if scenario.ramp_rate is not None:
            targets.append(
                Target(f"highest offered rate with p99 <= {RAMP_P99_MS:g} ms", best, scenario.ramp_rate, "msg/s", True)
            )
    finally:
        await close_all(tracker)
    return Outcome(scenario.name, targets, failures)


# ----------------------------------------------------------------------------------- the burst's checks


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def newest(events: list[dict[str, Any]], kind: str, session_id: str | None = None) -> dict[str, Any] | None:
    """The event of type `kind` (of session `session_id`, if given) with the newest `data.asOf`, as a client keeps
    it (events of two requests may arrive out of order); of equal ones, the later arrival."""
    chosen: dict[str, Any] | None = None
    for event in events:
        data = event.get("data") or {}
        if event.get("type") != kind or (session_id is not None and data.get("sessionId") != session_id):
            continue
        if chosen is None or _when(data["asOf"]) >= _when(chosen["data"]["asOf"]):
            chosen = event
    return chosen


def staff_queue_problem(events: list[dict[str, Any]], waiting: list[dict[str, Any]]) -> str | None:
    """None when a staff connection's newest queue.updated is the real queue: `waiting` (the waiting sessions read
    over HTTP, oldest first) with `waiting` = their number and the first QUEUE_LIST_LIMIT of them listed in
    order, at positions 1..n, with their visitor's name and created time; else what is wrong."""
    latest = newest(events, "queue.updated")
    if latest is None:
        return "no queue.updated event"
    data = latest["data"]
    if data.get("waiting") != len(waiting):
        return f"waiting {data.get('waiting')}, but {len(waiting)} sessions wait"
    listed = list(data.get("sessions") or [])
    expected = waiting[:QUEUE_LIST_LIMIT]
    got_ids = [s.get("id") for s in listed]
    want_ids = [w["id"] for w in expected]
    if got_ids != want_ids:
        missing, stale = set(want_ids) - set(got_ids), set(got_ids) - set(want_ids)
        if missing or stale:
            return f"{len(listed)} sessions listed: {len(missing)} waiting ones missing, {len(stale)} not waiting"
        return "the waiting sessions listed out of their order"
    for n, (got, want) in enumerate(zip(listed, expected, strict=True), start=1):
        if got.get("position") != n:
            return f"session {got['id']} at position {got.get('position')}, it is number {n}"
        if got.get("visitorName") != want.get("visitorName"):
            return f"session {got['id']} names visitor {got.get('visitorName')!r}, not {want.get('visitorName')!r}"
        if not got.get("createdAt") or _when(got["createdAt"]) != _when(want["createdAt"]):
            return f"session {got['id']} created {got.get('createdAt')}, not {want['createdAt']}"
    return None


def visitor_position_problem(events: list[dict[str, Any]], session_id: str, position: int | None) -> str | None:
    """None when the visitor's newest chat.queued of its session gives its real position (None: not waiting)."""
    latest = newest(events, "chat.queued", session_id)
    if latest is None:
        return "no chat.queued"
    got = latest["data"].get("position")
    return None if got == position else f"position {got}, it is {position}"


def first_arrival(log: list[tuple[float, dict[str, Any]]], kind: str, session_id: str) -> float | None:
    """When the first event of type `kind` for session `session_id` (data.sessionId) arrived."""
    for at, event in log:
        if event.get("type") == kind and (event.get("data") or {}).get("sessionId") == session_id:
            return at
    return None


def answer_to(log: list[tuple[float, dict[str, Any]]], kind: str, request_id: str) -> dict[str, Any] | None:
    """The event of type `kind` answering request `request_id` (its echoed requestId)."""
    for _, event in log:
        if event.get("type") == kind and event.get("requestId") == request_id:
            return event
    return None


async def waiting_queue(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The tenant's waiting sessions over HTTP (every page), oldest first: the queue's order."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "waiting", "limit": 100} | ({"cursor": cursor} if cursor else {})
        reply = await http.get("/api/support/chat/sessions", params=params, headers=headers)
        reply.raise_for_status()
        body = reply.json()
        rows += body["data"]
        cursor = body.get("nextCursor")
        if not cursor:
            return sorted(rows, key=lambda r: (_when(r["createdAt"]), r["id"]))


def _spread(values: list[int]) -> str:
    if not values:
        return "min -, median -, max -"
    ordered = sorted(values)
    return f"min {ordered[0]}, median {ordered[len(ordered) // 2]}, max {ordered[-1]}"


async def run_burst(stack: Stack, opts: argparse.Namespace, scenario: Scenario) -> Outcome:
    """`--staff` staff connections (agents who are away, so every new chat waits), then `--chats` visitors each
    sending startChat, evenly spread over `--burst-seconds` (open loop). Timed: each visitor's startChat until its
    chat.queued. Checked: every visitor's newest position and every staff connection's newest queue.updated
    against the waiting sessions read over HTTP, within `--settle` seconds."""
    from local.token import mint_token

    print(
        f"\n# Scenario {scenario.name}: {scenario.title}\n\n{opts.staff} staff connections (agents away), "
        f"{opts.chats} visitors each starting a chat within {opts.burst_seconds:g} s, "
        f"LOCAL_LAMBDA_CONCURRENCY={opts.concurrency}",
        flush=True,
    )
    tracker = Tracker()
    failures: list[str] = []
    tenant = str(uuid4())
    admin = {"Authorization": f"Bearer {mint_token(tenant, 'admin')}"}
    limit = asyncio.Semaphore(CONNECT_PARALLEL)
    try:
        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=stack.http, timeout=SETUP_TIMEOUT) as http:
            reply = await http.post(
                "/api/support/widgets", json={"name": "Shop", "allowedOrigins": [SHOP]}, headers=admin
            )
            reply.raise_for_status()
            widget_key = reply.json()["data"]["widgetKey"]
            reply = await http.put(
                "/api/support/settings/chat", json={"queueCap": max(DEFAULT_QUEUE_CAP, opts.chats)}, headers=admin
            )
            reply.raise_for_status()

            async def agent(n: int) -> str:
                body = {
                    "agentName": f"Agent {n}",
                    "agentEmail": f"agent{n}-{uuid4()}@desk.example",
                    "maxConcurrentChats": 5,
                    "status": "away",  # connected, but not taking chats: every new chat waits
                }
                async with limit:
                    reply = await http.post("/api/support/agents", json=body, headers=admin)
                reply.raise_for_status()
                return str(reply.json()["data"]["id"])

            agent_ids = await asyncio.gather(*(agent(n) for n in range(opts.staff)))

            async def widget_session(index: int) -> dict[str, Any]:
                transport = httpx.AsyncHTTPTransport(local_address=visitor_address(index))
                async with (
                    limit,
                    httpx.AsyncClient(base_url=stack.http, timeout=SETUP_TIMEOUT, transport=transport) as own,
                ):
                    reply = await own.post(
                        "/api/support/widget/session", json={"widgetKey": widget_key}, headers={"Origin": SHOP}
                    )
                    reply.raise_for_status()
                    return dict(reply.json()["data"])

            warmers = BURST_WARMERS if opts.chats >= BURST_WARMERS else 0
            visitor_sessions = await asyncio.gather(*(widget_session(i) for i in range(opts.chats + warmers)))
            visitor_sessions, warmer_sessions = visitor_sessions[: opts.chats], visitor_sessions[opts.chats :]

            async def open_limited(index: int, side: str, url: str, origin: str | None, source: str | None) -> Conn:
                async with limit:
                    return await open_conn(index, side, url, origin, tracker, source)

            staff = await asyncio.gather(
                *(
                    open_limited(n, "agent", f"{stack.ws}/?token={mint_token(tenant, 'agent', agent_id=a)}", None, None)
                    for n, a in enumerate(agent_ids)
                )
            )
            visitors = await asyncio.gather(
                *(
                    open_limited(
                        i, "visitor", f"{stack.ws}/?visitorToken={s['connectToken']}", SHOP, visitor_address(i)
                    )
                    for i, s in enumerate(visitor_sessions)
                )
            )
            warming = await asyncio.gather(
                *(
                    open_limited(
                        opts.chats + k,
                        "visitor",
                        f"{stack.ws}/?visitorToken={s['connectToken']}",
                        SHOP,
                        visitor_address(opts.chats + k),
                    )
                    for k, s in enumerate(warmer_sessions)
                )
            )
            print(
                f"set-up: {len(staff)} staff and {len(visitors)} visitor connections in "
                f"{time.perf_counter() - started:.1f} s (the agents, widget sessions and connects)"
            )
            # Warm the functions' execution environments, as a desk in steady use has them (provisioned concurrency
            # in AWS): every visitor pings at once, so the WebSocket function's worker pool grows to its concurrency
            # now and not during the burst (a cold start is the connect figure's, not this target's).
            for visitor in visitors:
                await visitor.ws.send(json.dumps({"action": "ping", "requestId": "warm"}))
            deadline = time.monotonic() + SETUP_TIMEOUT
            while time.monotonic() < deadline and not all(
                any(e.get("type") == "pong" for _, e in v.log) for v in visitors
            ):
                await asyncio.sleep(0.05)
            # and the path the burst takes, as a desk in steady use has run it: a few chats start at once and wait
            # (each worker's database connection has then planned the queue's statements, and the broadcast function
            # has told the staff), then end; the burst's tenant, staff and queue are the same, the queue empty again.
            await warm_the_queue(warming)
            await asyncio.sleep(1.0)
            for conn in tracker.conns:
                conn.log.clear()
            tracker.errors.clear()

            # The burst: open loop, evenly spread
            cpu_before = cpu_by_part(stack.process.pid)
            wall = time.perf_counter()
            loop = asyncio.get_running_loop()
            start = loop.time() + 0.2
            sent: list[float] = []
            lag: list[float] = []
            for i, visitor in enumerate(visitors):
                due = start + i * opts.burst_seconds / max(1, opts.chats)
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                lag.append(max(0.0, loop.time() - due) * 1000)
                sent.append(time.perf_counter())
                body = {"action": "startChat", "requestId": f"b{i}", "visitorName": f"V{i}"}
                await visitor.ws.send(json.dumps(body))

            # Every visitor's answer and chat.queued (or an error: then it will not come)
            def session_of(i: int) -> str | None:
                answer = answer_to(visitors[i].log, "chat.started", f"b{i}")
                return str(answer["data"]["id"]) if answer else None

            def settled(i: int) -> bool:
                session_id = session_of(i)
                if session_id is not None and first_arrival(visitors[i].log, "chat.queued", session_id) is not None:
                    return True
                return any(e.get("type") in ("error", None) for _, e in visitors[i].log)

            deadline = time.monotonic() + max(30.0, opts.settle)
            while not all(settled(i) for i in range(len(visitors))) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            queued_ms: list[float] = []
            sessions: dict[int, str] = {}
            not_waiting = 0
            for i, visitor in enumerate(visitors):
                session_id = session_of(i)
                if session_id is None:
                    continue
                sessions[i] = session_id
                answer = answer_to(visitor.log, "chat.started", f"b{i}")
                if answer and answer["data"].get("status") != "waiting":
                    not_waiting += 1
                if (at := first_arrival(visitor.log, "chat.queued", session_id)) is not None:
                    queued_ms.append((at - sent[i]) * 1000)
            all_queued = time.perf_counter()

            # The real queue, then every connection's newest view of it, within the settle time
            queue = await waiting_queue(http, admin)
            positions = {row["id"]: n for n, row in enumerate(queue, start=1)}
            settle_deadline = time.monotonic() + opts.settle
            while True:
                staff_problems = [staff_queue_problem([e for _, e in c.log], queue) for c in staff]
                visitor_problems = [
                    visitor_position_problem([e for _, e in visitors[i].log], s, positions.get(s))
                    for i, s in sessions.items()
                ]
                if not any(staff_problems + visitor_problems) or time.monotonic() > settle_deadline:
                    break
                await asyncio.sleep(0.25)
            wall = time.perf_counter() - wall
            cpu_after = cpu_by_part(stack.process.pid)
    finally:
        await close_all(tracker)

    p50, p99 = percentile(queued_ms, 50), percentile(queued_ms, 99)
    targets = [Target("startChat to its chat.queued p99", p99, scenario.queued_p99_ms or RAMP_P99_MS, "ms")]
    print(f"\n## {opts.chats} new chats in {opts.burst_seconds:g} s, {opts.staff} staff connections\n")
    print("| figure | value | target | result |\n|---|---:|---|---|")
    print(f"| startChat to its chat.queued p50 | {_fmt(p50)} ms | - | |")
    for target in targets:
        print(target.row())
    print(f"| startChat to its chat.queued max | {_fmt(max(queued_ms, default=float('nan')))} ms | - | |")
    print(f"| send schedule lag p99 (load generator) | {_fmt(percentile(lag, 99))} ms | - | |")
    print(f"| every chat.queued in (from the first send) | {(all_queued - sent[0]) * 1000:.0f} ms | - | |")
    updated = [sum(1 for _, e in c.log if e.get("type") == "queue.updated") for c in staff]
    waiting_events = [sum(1 for _, e in c.log if e.get("type") == "chat.waiting") for c in staff]
    print(f"\nqueue.updated events per staff connection: {_spread(updated)}")
    print(f"chat.waiting events per staff connection: {_spread(waiting_events)}")
    print(f"the desk's queue over HTTP: {len(queue)} waiting")

    unqueued = len(visitors) - len(queued_ms)
    wrong_staff = [p for p in staff_problems if p]
    wrong_visitors = [p for p in visitor_problems if p]
    checks = {
        "every visitor answered and queued": unqueued == 0,
        "every chat waits": not_waiting == 0 and len(queue) == len(visitors),
        "visitor positions": not wrong_visitors,
        "staff queue (newest queue.updated)": not wrong_staff,
        "no error events": not tracker.errors,
    }
    print(f"\nChecks (within {opts.settle:g} s of the last chat.queued, against the waiting sessions over HTTP):")
    for name, ok in checks.items():
        print(f"  check {name}: {'OK' if ok else 'FAILED'}")
    if unqueued:
        failures.append(f"{unqueued} visitors got no chat.queued for their session")
    if not_waiting or len(queue) != len(visitors):
        failures.append(f"{not_waiting} chats did not wait; {len(queue)} wait of {len(visitors)} started")
    if wrong_visitors:
        failures.append(f"{len(wrong_visitors)} visitors' newest chat.queued is wrong, first: {wrong_visitors[0]}")
    if wrong_staff:
        failures.append(
            f"{len(wrong_staff)} of {len(staff)} staff connections end with a wrong queue, first: {wrong_staff[0]}"
        )
    if tracker.errors:
        failures.append(f"{len(tracker.errors)} error events, first: {tracker.errors[0]}")
    for problem in failures:
        print(f"  FAILED: {problem}")
    print(f"\nCPU seconds during the burst and the settling ({wall:.1f} s):")
    for part in sorted(cpu_after, key=lambda p: -(cpu_after[p] - cpu_before.get(p, 0.0))):
        print(f"  {part}: {cpu_after[part] - cpu_before.get(part, 0.0):.1f} s")
    return Outcome(scenario.name, targets, failures)


# ------------------------------------------------------------------------------------------------ the run


async def bench(args: argparse.Namespace) -> int:
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    print(
        f"# Live chat bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; scenarios: {', '.join(names)}"
    )
    started = time.perf_counter()
    stack = start_stack(args.concurrency)
    print(f"stack up in {time.perf_counter() - started:.1f} s: {stack.http}, {stack.ws}", flush=True)
    outcomes: list[Outcome] = []
    try:
        for name in names:
            scenario = SCENARIOS[name]
            opts = resolve(args, scenario)
            run = run_burst if name == "burst" else run_messages
            outcomes.append(await run(stack, opts, scenario))
    finally:
        stop_stack(stack)
    print(
        f"\n# Summary (load average at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())})\n\n"
        "| scenario | figure | value | target | result |\n|---|---|---:|---|---|"
    )
    for outcome in outcomes:
        for target in outcome.targets:
            print(f"| {outcome.scenario} {target.row()}")
    failures = [f"{o.scenario}: {p}" for o in outcomes for p in o.failures]
    missed = [f"{o.scenario}: {t.figure}" for o in outcomes for t in o.targets if t.verdict == "FAIL"]
    messages = "no message lost, none duplicated, every sender's order kept" if names != ["burst"] else ""
    kept = "; ".join(k for k in (messages, "every queue right" if "burst" in names else "") if k)
    print("\nchecks: " + (f"PASS ({kept})" if not failures else f"FAIL ({len(failures)} problems)"))
    for failure in failures:
        print(f"  {failure}")
    print("targets: " + ("PASS" if not missed else f"FAIL ({len(missed)} missed: {'; '.join(missed)})"))
    if failures:
        return 1
    if args.check and missed:
        return 2
    return 0


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.live_chat", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        choices=(*SCENARIOS, "all"),
        default="per-agent",
        help="what to measure against its targets (per-agent, the default; per-chat; burst; all three in one run)",
    )
    group = parser.add_argument_group("message scenarios (per-agent, per-chat); default: the scenario's")
    group.add_argument("--sessions", type=int, default=None, help="chats, a visitor each (200)")
    group.add_argument("--agents", type=int, default=None, help="per-agent: one per session; per-chat: 8")
    group.add_argument(
        "--agent-connections",
        choices=("session", "session-all", "agent"),
        default=None,
        help="one connection per agent (per-agent, as a console holds), one per chat that follows its chat (per-chat) "
        "or one per chat that hears all its agent's chats (session-all)",
    )
    group.add_argument("--messages", type=int, default=None, help="timed messages (10,000)")
    group.add_argument("--rate", type=float, default=None, help="offered messages per second (open loop, 100)")
    group.add_argument("--warmup", type=int, default=None, help="messages at up to 50 msg/s before timing (200)")
    group.add_argument("--ramp", type=float, nargs="*", default=None, help="per-agent: 100 150 200 300")
    group.add_argument("--no-ramp", dest="ramp", action="store_const", const=[])
    group.add_argument("--ramp-seconds", type=float, default=None, help="seconds per ramp step (5)")
    group.add_argument(
        "--drain", type=float, default=600.0, help="seconds to wait for deliveries after the last send (600)"
    )
    group = parser.add_argument_group("the burst scenario")
    group.add_argument("--staff", type=int, default=None, help="staff connections, an agent away each (200)")
    group.add_argument("--chats", type=int, default=None, help="visitors starting a chat in the burst (100)")
    group.add_argument("--burst-seconds", type=float, default=None, help="the burst's length (1)")
    group.add_argument(
        "--settle", type=float, default=None, help="seconds for every connection's queue to come right (5)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="LOCAL_LAMBDA_CONCURRENCY of the stack")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument(
        "--quick", action="store_true", help="smaller: 20 sessions, 400 messages at 50 msg/s; a burst of 10, 20 staff"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.serve:
        return serve(args.concurrency)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):  # uvloop, as the gateway's uvicorn runs on it (none on Windows)
        from uvloop import new_event_loop as loop_factory
    return asyncio.run(bench(args), loop_factory=loop_factory)


if __name__ == "__main__":
    sys.exit(main())
