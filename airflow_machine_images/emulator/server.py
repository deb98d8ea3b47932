"""The HTTP layer: a threading HTTP/1.1 server that hands each request to the application.

It guards the machine it runs on before the application sees anything:

* **Host check.** Only requests whose ``Host`` header names a loopback address or ``localhost`` are
  served (unless the server was made with ``allow_any_host``, the emulator's ``--allow-remote``):
  a web page the user visits cannot rebind its own name to 127.0.0.1 and read the emulator's
  request log or state (DNS rebinding).
* **Origin check.** A request carrying an ``Origin`` header (a web page's request: browsers add it
  to every cross-origin request, and send a "simple" ``text/plain`` POST without asking first) is
  served only if that origin is the emulator's own (``http``, a loopback host, the emulator's port),
  whatever ``allow_any_host`` says: otherwise a page the user visits could inject faults, seed images
  or start inserts. The real API authenticates every request (bearer token), so any page may call it;
  the emulator authenticates nothing, so it refuses cross-site requests instead (the safe reading).
* **Bodies.** At most ``max_body_bytes`` are read (413 beyond, announced or chunked); a
  Content-Length that is not a single decimal number, or a body shorter than announced, is a 400. A
  request whose method changes something (``POST``, ``PUT``, ``PATCH``, ``DELETE``, after
  ``X-HTTP-Method-Override``) with a body must send it as ``application/json``: otherwise 400
  ``badContent`` "Unsupported content with type: ...", the answer Google's APIs give
  (googleapis/elixir-google-api issue 4266). An empty body may carry any type (aiohttp labels an
  empty POST ``application/octet-stream``); a web page's empty POST still meets the Origin check.
* **Every request is answered** (JSON, as the API writes errors), unless a fault asks to drop it: an
  unexpected exception is a 500, not a dropped connection.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import socket
import socketserver
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable
    from email.message import Message

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Application", "EmulatorHTTPServer", "Response", "is_loopback_host"]

#: The largest request body read (an insert with 64 labels and keys is a few kilobytes).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_DECIMAL = re.compile(r"[0-9]+")
#: Methods that change something: their bodies must be JSON.
_MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback_host(host: str) -> bool:
    """Whether a host name or address (no port; IPv6 with or without brackets) is this machine's loopback.

    :param host: e.g. ``127.0.0.1``, ``[::1]``, ``localhost``.
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if text.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _host_of(header: str) -> str:
    """The host part of a ``Host`` header value (``[::1]:8085`` -> ``[::1]``, ``a:1`` -> ``a``)."""
    value = header.strip()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class _Refused(Exception):
    """A request answered before the application sees it. :param status: HTTP status. :param reason: errors[].reason.
    :param message: the message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _error_body(status: int, reason: str, message: str) -> bytes:
    """The API's error JSON."""
    error = {"code": status, "message": message, "errors": [{"message": message, "domain": "global", "reason": reason}]}
    return json.dumps({"error": error}, separators=(",", ":")).encode()


@dataclass
class Response:
    """What to send back.

    :param status: the HTTP status, or None to close the connection without answering.
    :param body: the body bytes.
    :param headers: extra headers (Content-Type and Content-Length are added).
    :param delay: seconds to hold the answer back (interrupted when the server stops).
    :param on_finish: called just before the answer is sent (or the connection dropped).
    """

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    on_finish: Callable[[], None] | None = None


class Application(Protocol):
    """What the server calls for each request."""

    stopping: threading.Event

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Response:
        """:param method: HTTP method. :param target: path and query. :param headers: request headers.
        :param body: request body. :return: the response."""
        ...


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: reads the body, asks the application, answers, delays or drops."""

    protocol_version = "HTTP/1.1"
    server_version = "ComputeEngineEmulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections are closed after this long
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: the emulated server's time (its clock may be set apart from this machine's)."""
        return super().date_time_string(self.server.wall_time() if timestamp is None else timestamp)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr line (the application logs its own)."""

    def _check_host(self) -> None:
        """:raises _Refused: the Host header names no loopback host (and the server does not serve any host)."""
        if self.server.allow_any_host:
            return
        header = self.headers.get("Host")
        host = _host_of(header) if header else ""
        if not host or not is_loopback_host(host):
            shown = json.dumps(host[:100]) if host else "no Host header"
            raise _Refused(
                403,
                "forbidden",
                f"Host {shown} is not a loopback name or address: the emulator serves this machine only "
                "(so that no web page can reach it by DNS rebinding). Start it with --allow-remote "
                "(allow_remote=True) to serve other hosts.",
            )

    def _check_origin(self) -> None:
        """:raises _Refused: an ``Origin`` header names another origin than the emulator's own (403)."""
        origin = self.headers.get("Origin")
        if origin is None:
            return
        try:
            parts = urlsplit(origin.strip())
            own = (
                parts.scheme == "http"
                and is_loopback_host(parts.hostname or "")
                and parts.port == self.server.server_port
                and not (parts.path or parts.query or parts.username)
            )
        except ValueError:
            own = False
        if not own:
            raise _Refused(
                403,
                "forbidden",
                f"Origin {json.dumps(origin[:100])} is not this emulator's: it answers programs and its own "
                "origin only, never another web page (which could otherwise change its faults and resources).",
            )

    def _check_content_type(self, body: bytes) -> None:
        """:raises _Refused: a mutating request's body is not sent as ``application/json`` (400)."""
        method = self.command
        override = self.headers.get("X-HTTP-Method-Override")
        if method == "POST" and override:
            method = override.strip().upper()
        if method not in _MUTATING_METHODS:
            return
        given = self.headers.get("Content-Type")
        media = (given or "").split(";", 1)[0].strip().lower()
        if body.strip() and media != "application/json":  # an empty body may say anything (aiohttp: octet-stream)
            shown = json.dumps((given or "none")[:100])[1:-1]
            raise _Refused(400, "badContent", f"Unsupported content with type: {shown}")

    def _read_body(self) -> bytes:
        """:return: the request body (Content-Length or chunked). :raises _Refused: 400 or 413."""
        limit = self.server.max_body_bytes
        too_large = _Refused(413, "payloadTooLarge", f"The request body is larger than {limit} bytes.")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(65537)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _Refused(400, "badRequest", "A chunk size is not a hexadecimal number.") from None
                if size < 0:
                    raise _Refused(400, "badRequest", "A chunk size is negative.")
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise too_large
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise _Refused(400, "badRequest", "The body is shorter than its chunk sizes.")
                chunks.append(chunk)
                self.rfile.readline(3)
        lengths = {value.strip() for value in self.headers.get_all("Content-Length") or []}
        if not lengths:
            return b""
        (length,) = lengths if len(lengths) == 1 else ("",)
        if not _DECIMAL.fullmatch(length):
            raise _Refused(400, "badRequest", "Content-Length is not one decimal number.")
        count = int(length)
        if count > limit:
            raise too_large
        body = self.rfile.read(count) if count > 0 else b""
        if len(body) < count:
            raise _Refused(400, "badRequest", "The body is shorter than its Content-Length.")
        return body

    def _refuse(self, refusal: _Refused) -> None:
        """Answer without asking the application, and close (an unread body may follow)."""
        self.close_connection = True
        payload = _error_body(refusal.status, refusal.reason, refusal.message)
        with contextlib.suppress(OSError):
            self.send_response(refusal.status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()

    def _dispatch(self) -> None:
        """Handle one request of any method."""
        try:
            self._check_host()
            self._check_origin()
            body = self._read_body()
            self._check_content_type(body)
        except _Refused as refusal:
            self._refuse(refusal)
            return
        try:
            response = self.server.app.handle(self.command, self.path, self.headers, body)
        except Exception:  # a bug: answer it, do not drop the connection
            traceback.print_exc()
            response = Response(500, _error_body(500, "backendError", "The emulator failed on this request."))
        if response.delay > 0:
            self.server.app.stopping.wait(response.delay)
        # Record before answering: a client that has its answer must find the request in the log.
        if response.on_finish is not None:
            response.on_finish()
        try:
            if response.status is None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.server.app.stopping.is_set():
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading server (one daemon thread per connection) that can cut every connection on stop.

    :param address: host and port.
    :param app: the application.
    :param allow_any_host: serve requests whatever their Host header (else loopback names only).
    :param max_body_bytes: the largest request body read (413 beyond).
    :param wall_time: the server's time in seconds since the epoch, for the ``Date`` header of every
        answer (RFC 9110, section 6.6.1); None: this machine's.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        app: Application,
        *,
        allow_any_host: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        wall_time: Callable[[], float] | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.allow_any_host = allow_any_host
        self.max_body_bytes = max_body_bytes
        self.wall_time = wall_time or time.time
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse-DNS lookup of the host (slow where DNS is missing)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        """Remember or forget an open connection.

        :param connection: the connection's socket.
        :param add: True when it opens, False when it closes.
        """
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection down, so no handler thread stays blocked on a client."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
