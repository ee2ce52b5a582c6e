"""What one post to a connection costs: the fan-out's unit, measured alone, boto3 beside `support.realtime`.

    .venv/bin/python -m bench.post_cost [--posts 1000] [--rounds 10]

Starts the live chat bench's stack (`bench.live_chat`), opens one staff WebSocket, and posts a 350-byte event to
it `--posts` times by each of two paths, in the same process against the same management API:

- boto3: an `apigatewaymanagementapi` client configured as `support.realtime` configured it before issue 16
  (standard retries, 4 attempts, 16 pooled connections), `post_to_connection`;
- realtime: `support.realtime.ManagementApi`, what the functions use now (botocore's SigV4 signer over a urllib3
  pool), `post_to_connection`.

Both sign with the same temporary credentials (a session token, as in Lambda). After 50 unmeasured posts each,
the paths take turns in `--rounds` rounds (so a change in the machine's load falls on both), one post at a time
from one thread. Prints the CPU time of the posting thread per post (building, signing, sending, reading the
answer), the wall time per post, and the ratio of the CPU times; checks that the connection received every post
(exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import boto3
import psycopg
from botocore.config import Config
from botocore.credentials import Credentials
from websockets.sync.client import connect

from bench.live_chat import REPO, start_stack, stop_stack
from local.token import mint_token
from support.realtime import FAN_OUT_CONCURRENCY, ManagementApi

REGION = "us-east-1"
CREDENTIALS = Credentials("local", "local", "local-session-token")  # the local gateway accepts any signature
WARMUP = 50
SETUP_TIMEOUT = 60.0
TARGET_MS = 0.3  # CPU per post (issue 16)


@dataclass
class Path:
    name: str
    post: Callable[[], object]
    cpu_seconds: float = 0.0
    walls: list[float] = field(default_factory=list)

    def run(self, posts: int) -> None:
        cpu = time.thread_time()
        for _ in range(posts):
            started = time.perf_counter()
            self.post()
            self.walls.append(time.perf_counter() - started)
        self.cpu_seconds += time.thread_time() - cpu

    def cpu_ms_per_post(self) -> float:
        return self.cpu_seconds / len(self.walls) * 1000

    def line(self) -> str:
        return (
            f"{self.name:<8} x{len(self.walls)}: {self.cpu_ms_per_post():.3f} ms CPU of the posting thread per post, "
            f"wall p50 {statistics.median(self.walls) * 1000:.2f} ms, mean {statistics.fmean(self.walls) * 1000:.2f} ms"
        )


def count_messages(url: str, pipe: Connection) -> None:
    """The reading side: opens the connection, says so, and once told how many messages to expect answers how
    many it got (when it has them all, or after 10 s without a new one)."""
    with connect(url, ping_interval=None, max_queue=None) as ws:
        pipe.send("open")
        expected: int | None = None
        received = 0
        quiet_since = time.monotonic()
        while expected is None or (received < expected and time.monotonic() - quiet_since < 10):
            try:
                ws.recv(timeout=0.5)
            except TimeoutError:
                if expected is None and pipe.poll():
                    expected = pipe.recv()
                continue
            received += 1
            quiet_since = time.monotonic()
        pipe.send(received)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.post_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=1000, help="posts per path (default 1000)")
    parser.add_argument("--rounds", type=int, default=10, help="turns each path takes (default 10)")
    args = parser.parse_args()
    stack = start_stack(4)
    try:
        tenant = str(uuid.uuid4())
        # The connection is read in a process of its own: its frames are no part of the posts' CPU.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        reader = context.Process(
            target=count_messages, args=(f"{stack.ws}/?token={mint_token(tenant, 'admin')}", theirs)
        )
        reader.start()
        if not ours.poll(SETUP_TIMEOUT):
            sys.exit("the reading connection did not open")
        ours.recv()
        port = (REPO / ".local" / "pg-bench-chat" / "postmaster.pid").read_text().split("\n")[3]
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=live_chat") as conn:
            row = conn.execute("SELECT connection_id FROM ws_connections WHERE user_id = %s", (tenant,)).fetchone()
        assert row is not None
        connection_id: str = row[0]
        endpoint = stack.ws.replace("ws://", "http://")
        client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS.access_key,
            aws_secret_access_key=CREDENTIALS.secret_key,
            aws_session_token=CREDENTIALS.token,
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 4}, max_pool_connections=FAN_OUT_CONCURRENCY
            ),
        )
        management = ManagementApi(endpoint, region=REGION, credentials=CREDENTIALS)
        data = b'{"type":"message.new","data":{"message":"' + b"x" * 300 + b'"}}'
        paths = [
            Path("boto3", lambda: client.post_to_connection(ConnectionId=connection_id, Data=data)),
            Path("realtime", lambda: management.post_to_connection(connection_id, data)),
        ]
        for path in paths:
            for _ in range(WARMUP):
                path.post()
        per_round, extra = divmod(args.posts, args.rounds)
        for number in range(args.rounds):
            for path in paths if number % 2 == 0 else reversed(paths):
                path.run(per_round + (1 if number < extra else 0))
        expected = len(paths) * (WARMUP + args.posts)
        ours.send(expected)
        received = ours.recv() if ours.poll(SETUP_TIMEOUT) else 0
        reader.join(SETUP_TIMEOUT)
        boto, realtime = paths
        for path in paths:
            print(path.line())
        print(
            f"ratio boto3 / realtime: {boto.cpu_ms_per_post() / realtime.cpu_ms_per_post():.1f}x the CPU per post; "
            f"realtime {realtime.cpu_ms_per_post():.3f} ms against the target of {TARGET_MS} ms: "
            f"{'PASS' if realtime.cpu_ms_per_post() <= TARGET_MS else 'FAIL'}"
        )
        print(f"check delivered: {'OK' if received == expected else 'FAIL'} ({received} of {expected} posts received)")
        if received != expected:
            sys.exit(1)
    finally:
        stop_stack(stack)


if __name__ == "__main__":
    main()
