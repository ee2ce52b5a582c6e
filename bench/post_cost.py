"""What one `post_to_connection` costs: the fan-out's unit, measured alone.

    .venv/bin/python -m bench.post_cost

Starts the live chat bench's stack (`bench.live_chat`), opens one staff WebSocket, and posts a 350-byte event to
it `--posts` times (after 50 unmeasured) with a boto3 `apigatewaymanagementapi` client configured as
`support.realtime` configures it, one post at a time from one thread. Prints the CPU time of the posting thread
per post (boto3/botocore: building, signing, sending, parsing) and the wall time per post.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid

import boto3
import psycopg
from botocore.config import Config
from websockets.sync.client import connect

from bench.live_chat import REPO, start_stack, stop_stack
from local.token import mint_token


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.post_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=1000)
    args = parser.parse_args()
    stack = start_stack(4)
    try:
        tenant = str(uuid.uuid4())
        ws = connect(f"{stack.ws}/?token={mint_token(tenant, 'admin')}", ping_interval=None, max_queue=None)
        threading.Thread(target=lambda: [None for _ in ws], daemon=True).start()  # read and drop
        port = (REPO / ".local" / "pg-bench-chat" / "postmaster.pid").read_text().split("\n")[3]
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=live_chat") as conn:
            row = conn.execute("SELECT connection_id FROM ws_connections WHERE user_id = %s", (tenant,)).fetchone()
        assert row is not None
        client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=stack.ws.replace("ws://", "http://"),
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the local gateway's dummy credentials
            config=Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=16),
        )
        data = b'{"type":"message.new","data":{"message":"' + b"x" * 300 + b'"}}'
        for _ in range(50):
            client.post_to_connection(ConnectionId=row[0], Data=data)
        walls = []
        cpu = time.thread_time()
        for _ in range(args.posts):
            started = time.perf_counter()
            client.post_to_connection(ConnectionId=row[0], Data=data)
            walls.append(time.perf_counter() - started)
        cpu_ms = (time.thread_time() - cpu) / args.posts * 1000
        print(
            f"boto3 post_to_connection x{args.posts}: {cpu_ms:.2f} ms CPU of the posting thread per post, "
            f"wall p50 {statistics.median(walls) * 1000:.2f} ms, mean {statistics.fmean(walls) * 1000:.2f} ms"
        )
        ws.close()
    finally:
        stop_stack(stack)


if __name__ == "__main__":
    main()
