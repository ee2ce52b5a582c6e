"""The webhook receiver's address, checked, and one POST to it (support.services.webhooks).

An endpoint must be `https://` and its name must resolve to public addresses only: never a private (RFC 1918, unique
local), loopback, link-local (the instance metadata service at 169.254.169.254 among them), multicast, shared
(100.64/10), unspecified or reserved one, so that a tenant cannot make the desk's functions call into the VPC. The
check runs when the endpoint is saved AND at every delivery: a name that resolved to a public address at creation
may resolve elsewhere later (DNS rebinding). At delivery the name is resolved once, every address it gave is
checked, and the connection goes to a checked address itself (never the name again), with the name as TLS SNI, as
the name the certificate must match, and as the Host header; so no second lookup can slip another address in.
Redirects are not followed (a 3xx is a failed attempt).

`RESOLVER` is the seam the tests feed their own answers through (a name that resolves to a public address when the
endpoint is saved and to 127.0.0.1 at delivery); in use it is `socket.getaddrinfo`.

Local development only: with WEBHOOKS_ALLOW_LOCAL_HTTP on (make run and the tests set it; off by default), `http://`
is accepted and so are loopback addresses. Private and link-local addresses stay refused even then.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

type Address = ipaddress.IPv4Address | ipaddress.IPv6Address

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# (host, port) -> the addresses the name resolves to. Replaced by tests (a fake DNS), never in use.
RESOLVER: Callable[[str, int], list[str]] = _getaddrinfo


class UnsafeUrl(ValueError):
    """The URL is not one the desk may call: why, in words for the admin (422) or the delivery log."""


@dataclass(frozen=True)
class Target:
    """A checked receiver: where to connect (`addresses`, all checked) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def refusal(address: Address, *, allow_loopback: bool) -> str | None:
    """Why the desk may not call this address, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "an address that is not public"
    return None


def parse(url: str, *, allow_local: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an acceptable URL; UnsafeUrl otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"the URL is not valid: {exc}") from exc
    schemes = ("https", "http") if allow_local else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeUrl("the URL must be https://")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the URL may not carry a user name or password")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("the URL has no host")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeUrl("the URL may not contain spaces or control characters")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def check(url: str, *, allow_local: bool) -> Target:
    """Parse `url`, resolve its host once and check every address it gave (an IP literal is checked as it is). The
    answer's addresses are the only ones a delivery may connect to."""
    scheme, host, port, path = parse(url, allow_local=allow_local)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        answers = [str(literal)]
    else:
        try:
            answers = RESOLVER(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeUrl(f"the host {host!r} does not resolve") from exc
        if not answers:
            raise UnsafeUrl(f"the host {host!r} does not resolve")
    addresses: list[str] = []
    for answer in answers:
        address = ipaddress.ip_address(answer.split("%", 1)[0])
        why = refusal(address, allow_loopback=allow_local)
        if why is not None:
            raise UnsafeUrl(f"the host {host!r} resolves to {why} ({address}); only public addresses are called")
        addresses.append(str(address))
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the HTTP status, None when there was no answer
    error: str | None  # why there was no answer (or a refusal)
    duration_ms: int


def _connection(target: Target, address: str, timeout: float) -> http.client.HTTPConnection:
    """An HTTP(S) connection to the checked `address`, speaking to `target.host`: TLS with the name as SNI and as the
    name the certificate is verified against; http.client sends the name as the Host header."""
    sock = socket.create_connection((address, target.port), timeout=timeout)
    if target.scheme == "https":
        try:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
        except BaseException:
            sock.close()
            raise
    connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    connection.sock = sock  # connected: http.client never resolves the name itself
    return connection


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float = TIMEOUT_SECONDS) -> Outcome:
    """One POST of `body` to a checked target, over a new connection to the first of its addresses that answers."""
    started = time.perf_counter()
    error = "no address to connect to"
    for address in target.addresses:
        try:
            connection = _connection(target, address, timeout)
        except (OSError, ssl.SSLError) as exc:
            error = f"could not connect: {exc}"[:1000]
            continue
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return Outcome(status=response.status, error=None, duration_ms=_elapsed(started))
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(status=None, error=f"no answer: {exc!r}"[:1000], duration_ms=_elapsed(started))
        finally:
            connection.close()
    return Outcome(status=None, error=error, duration_ms=_elapsed(started))


def _elapsed(started: float) -> int:
    return max(0, round((time.perf_counter() - started) * 1000))
