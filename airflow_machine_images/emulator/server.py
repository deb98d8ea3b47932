"""The HTTP layer: a threading HTTP/1.1 server that hands each request to the application."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from email.message import Message

__all__ = ["Application", "EmulatorHTTPServer", "Response"]


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

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr line (the application logs its own)."""

    def _read_body(self) -> bytes | None:
        """:return: the request body (Content-Length or chunked), or None when it is malformed."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            count = int(length)
        except ValueError:
            return None
        return self.rfile.read(count) if count > 0 else b""

    def _dispatch(self) -> None:
        """Handle one request of any method."""
        body = self._read_body()
        if body is None:
            self.send_error(400, "Bad request body")
            return
        response = self.server.app.handle(self.command, self.path, self.headers, body)
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
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: Application) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
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
