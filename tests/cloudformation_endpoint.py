"""A stand-in for the pre-signed S3 URL CloudFormation gives a custom resource: a real HTTP server on 127.0.0.1
that records every PUT (headers and JSON body) and answers 200, as S3 does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedPut:
    path: str
    content_type: str | None
    body: dict[str, Any]


@dataclass
class ResponseEndpoint:
    base_url: str
    puts: list[RecordedPut] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"{self.base_url}/cfn-responses/{name}?X-Amz-Signature=test"


@contextmanager
def response_endpoint() -> Iterator[ResponseEndpoint]:
    endpoint = ResponseEndpoint(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            endpoint.puts.append(RecordedPut(self.path, self.headers.get("Content-Type"), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
