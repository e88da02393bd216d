"""Loopback servers for the dependency checks' tests: nothing leaves 127.0.0.1.

- `JsonServer(routes)`: an HTTP server answering GET/POST paths from a table; the
  package index's JSON API (a recorded PyPI answer) and the OSV query API are served
  this way.
- `NotFoundProxy(ca)`: an HTTPS proxy that accepts `CONNECT pypi.org:443`, terminates TLS
  with a certificate for pypi.org from a test CA, and answers 404 to every request. It
  reproduces the way pip-audit goes falsely green: PyPI's vulnerability API not
  answering for a pin (a mirror or proxy without it) makes pip-audit skip the pin as
  "could not be audited", print "No known vulnerabilities found" and exit 0.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[[str, bytes], tuple[int, bytes]]


class JsonServer:
    """`routes[path](method, body) -> (status, body)`; other paths answer 404."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                server.requests.append((method, self.path, body))
                route = server.routes.get(self.path)
                status, out = route(method, body) if route else (404, b'{"message": "Not Found"}')
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def __enter__(self) -> JsonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def json_route(doc: Any, status: int = 200) -> Route:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return lambda method, req: (status, body)


class NotFoundProxy:
    """An HTTPS proxy on 127.0.0.1 answering 404 for every request it tunnels."""

    def __init__(self, ca: Any) -> None:
        cert = ca.issue_cert("pypi.org")
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.context)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.tunnels: list[str] = []
        self.stopped = threading.Event()
        self.threads: list[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with contextlib.suppress(OSError, ssl.SSLError), conn:
            head = _read_head(conn)
            self.tunnels.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with self.context.wrap_socket(conn, server_side=True) as tls:
                while _read_head(tls):
                    body = b'{"message": "Not Found"}'
                    tls.sendall(
                        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()
        self.accepter.join(5)
        for t in self.threads:
            t.join(5)

    def __enter__(self) -> NotFoundProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        data += chunk
    return data
