"""A terminal client of the live chat protocol, to try the WebSocket API of `make run` by hand.

    .venv/bin/python -m local.chat visitor --widget-key wk_...      # a visitor of the demo shop
    .venv/bin/python -m local.chat agent --tenant <uuid> --agent <uuid>   # that desk's agent

The visitor gets its tokens from the public widget session route (as the chat widget does, with the shop's
Origin), connects, and starts a chat; the agent connects with a staff token and becomes available. Each line
typed is sent as a message of the current chat (the last one started, assigned or joined); `/end` ends it,
`/typing` says you are typing, `/raw {...}` sends any protocol message. Every event received is printed.
Development only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

DEMO_ORIGIN = "http://127.0.0.1:3002"  # the demo shop of a make run on the default ports (MERCHANT_PORT 3002)


class Terminal:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.session_id: str | None = None
        self._ids = itertools.count(1)

    def send(self, action: str, **fields: Any) -> None:
        self.ws.send(json.dumps({"action": action, "requestId": f"t{next(self._ids)}", **fields}))

    def listen(self) -> None:
        try:
            for raw in self.ws:
                if not raw:  # an answer without a body (typing's): the route's response is an empty message
                    continue
                event = json.loads(raw)
                data = event.get("data") or {}
                if event.get("type") in ("chat.started", "chat.assigned", "chat.transferred") and isinstance(
                    data, dict
                ):
                    self.session_id = data.get("id") or self.session_id
                print(f"<< {json.dumps(event)}", flush=True)
        except ConnectionClosed as closed:
            print(f"-- connection closed: {closed}", flush=True)

    def loop(self) -> None:
        threading.Thread(target=self.listen, daemon=True).start()
        for line in sys.stdin:
            text = line.rstrip("\n")
            if text.startswith("/raw "):
                self.ws.send(text.removeprefix("/raw "))
            elif self.session_id is None:
                print("-- no chat yet: wait for chat.started or chat.assigned", flush=True)
            elif text == "/end":
                self.send("endChat", sessionId=self.session_id)
            elif text == "/typing":
                self.send("typing", sessionId=self.session_id, isTyping=True)
            elif text:
                self.send("sendMessage", sessionId=self.session_id, message=text, clientMessageId=os.urandom(8).hex())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.chat", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("role", choices=["visitor", "agent"])
    parser.add_argument("--http", default=os.environ.get("BASE", "http://127.0.0.1:3000"), help="the HTTP API")
    parser.add_argument("--ws", default=os.environ.get("WS", "ws://127.0.0.1:3001"), help="the WebSocket API")
    parser.add_argument("--widget-key", help="visitor: the widget key")
    parser.add_argument("--origin", default=DEMO_ORIGIN, help="visitor: the page's origin")
    parser.add_argument("--name", default="Terminal visitor", help="visitor: the name to chat as")
    parser.add_argument("--tenant", help="agent: the tenant")
    parser.add_argument("--agent", help="agent: the agent id")
    args = parser.parse_args(argv)

    if args.role == "visitor":
        if not args.widget_key:
            parser.error("a visitor needs --widget-key (make run prints the demo one)")
        reply = httpx.post(
            f"{args.http}/api/support/widget/session",
            json={"widgetKey": args.widget_key},
            headers={"Origin": args.origin},
        )
        if reply.status_code != 201:
            print(f"the widget session was refused: {reply.status_code} {reply.text}", file=sys.stderr)
            return 1
        url = f"{args.ws}/?visitorToken={reply.json()['data']['connectToken']}"
        headers: dict[str, str] | None = {"Origin": args.origin}
        first: tuple[str, dict[str, Any]] = ("startChat", {"visitorName": args.name})
    else:
        if not (args.tenant and args.agent):
            parser.error("an agent needs --tenant and --agent (make run prints the demo agent's)")
        from local.token import mint_token

        url = f"{args.ws}/?token={mint_token(args.tenant, 'agent', agent_id=args.agent)}"
        headers = None
        first = ("setStatus", {"status": "available"})
    with connect(url, additional_headers=headers) as ws:  # websockets closes it on the way out
        terminal = Terminal(ws)
        terminal.send(first[0], **first[1])
        print("-- connected; type a message and press Enter (/end, /typing, /raw {...}); Ctrl-D to quit", flush=True)
        terminal.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
