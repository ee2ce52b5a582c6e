"""A TCP proxy in front of PostgreSQL that sees what goes over the wire: it counts round trips (bench.round_trips)
and can cut a connection at a chosen moment (the tests of what a pipelined write does on a broken connection, and
the fault tests: tests/integration/test_faults.py).

A round trip is the client waiting for the server: the server's answer to what the client sent, each server-to-
client burst that follows client-to-server data on its connection, counts one (the server speaks only when asked,
and the client waits for every answer). Counted at the answer rather than at the question because psycopg follows a
pipeline's Sync with a Flush that may reach the proxy after the answer: it waits for nothing, and counted as a
question it would swallow the next one. Development only: nothing deployed imports it.
"""

from __future__ import annotations

import selectors
import socket
import threading

# CommandComplete of a COMMIT: 'C', its length (4 + 7), the tag with its NUL.
_COMMIT_COMPLETE = b"C\x00\x00\x00\x0bCOMMIT\x00"


class RoundTripProxy:
    """Listens on 127.0.0.1 (`port`) and relays each connection to `host`:`port` of the server."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._count = 0
        self._cut_after_commit = False
        self._commit_of: bytes | None = None
        self._cut_next_request = False
        self._cut_request_holding: bytes | None = None
        self.cuts = 0
        threading.Thread(target=self._accept, name="pg-proxy", daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self._count = 0

    @property
    def count(self) -> int:
        """Round trips since the last reset, over every connection."""
        with self._lock:
            return self._count

    def cut_after_commit(self, of_request_holding: bytes | None = None) -> None:
        """The next answer that reports a COMMIT done is not passed on: its connection is closed instead, as if it
        broke after the server committed and before the client heard. With `of_request_holding`, the first such
        answer after a client request that holds those bytes (a statement's words): that transaction's commit."""
        with self._lock:
            self._cut_after_commit = True
            self._commit_of = of_request_holding

    def cut_next_request(self) -> None:
        """The next thing a client sends is not passed on: its connection is closed instead (a connection found
        dead when used: the server did nothing)."""
        with self._lock:
            self._cut_next_request = True

    def cut_request_holding(self, text: bytes) -> None:
        """The next thing a client sends that holds `text` (a statement's words) is not passed on: its connection is
        closed instead, as if it broke between the statements before and that one (the server then rolls back what
        the open transaction had done)."""
        with self._lock:
            self._cut_request_holding = text

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _cut(self, data: bytes, from_client: bool) -> bool:
        with self._lock:
            if from_client and self._cut_next_request:
                self._cut_next_request = False
            elif from_client and self._cut_request_holding is not None and self._cut_request_holding in data:
                self._cut_request_holding = None
            elif from_client and self._cut_after_commit and self._commit_of is not None and self._commit_of in data:
                self._commit_of = None  # the next COMMIT answered is this request's
                return False
            elif not from_client and self._cut_after_commit and self._commit_of is None and _COMMIT_COMPLETE in data:
                self._cut_after_commit = False
            else:
                return False
            self.cuts += 1
            return True

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        last_from_client: bool | None = None  # the direction of the last data on this connection
        with selectors.DefaultSelector() as selector, client, server:
            selector.register(client, selectors.EVENT_READ, server)
            selector.register(server, selectors.EVENT_READ, client)
            while True:
                for key, _ in selector.select():
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                    except OSError:
                        return
                    from_client = source is client
                    if not data or self._cut(data, from_client):
                        return
                    if not from_client and last_from_client:  # the server answers what the client asked
                        with self._lock:
                            self._count += 1
                    last_from_client = from_client
                    try:
                        key.data.sendall(data)
                    except OSError:
                        return
