"""A misbehaving HTTP server for the suite's own tests: raw bytes on a real loopback socket,
each of the ways a real server, proxy or network breaks an answer.

`BadServer("trickle-headers")` listens on 127.0.0.1 on a free port in a thread and answers
every request the way its behaviour says; `stop()` (or leaving the `with` block) closes
every connection and joins its threads.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
from collections.abc import Callable

HEALTHY = {
    "status": "healthy",
    "timestamp": "2026-11-25 14:03:07",
    "version": "1.0.0",
    "components": {"llm_client": "healthy", "vector_database": "healthy", "workflow": "healthy"},
}


def _json_answer(value: object, status: str = "200 OK") -> bytes:
    body = json.dumps(value).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\nConnection: close\r\n\r\n" + body


HEALTHY_ANSWER = _json_answer(HEALTHY)


class BadServer:
    """One behaviour for every request, on 127.0.0.1:`port`."""

    def __init__(self, behaviour: str, redirect_to: str = "") -> None:
        self.behaviour = BEHAVIOURS[behaviour]
        self.redirect_to = redirect_to
        self.requests: list[str] = []  # the request lines received
        self.stopped = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def __enter__(self) -> BadServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopped.set()
        self._accepting.join(timeout=2)
        self._listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=2)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._conns.append(conn)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                path = self._read_request(conn)
                self.behaviour(self, conn, path)
            except OSError:  # the client gave up or stop() shut the socket: both expected
                pass

    def _read_request(self, conn: socket.socket) -> str:
        """Read one request; its target ("" when none came)."""
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return ""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.requests.append(lines[0])
        length = next(
            (
                int(v)
                for k, _, v in (x.partition(":") for x in lines)
                if k.lower() == "content-length"
            ),
            0,
        )
        while len(body) < length:
            body += conn.recv(65536)
        conn.settimeout(None)
        return lines[0].split(" ")[1] if lines[0].count(" ") >= 2 else ""

    def trickle(self, conn: socket.socket, data: bytes, seconds_per_byte: float = 1.0) -> None:
        """Send `data` one byte at a time; stops early when the server stops."""
        for byte in data:
            conn.sendall(bytes([byte]))
            if self.stopped.wait(seconds_per_byte):
                return

    def endless(self, conn: socket.socket, piece: bytes) -> None:
        """Send `piece` again and again until the client closes or the server stops."""
        while not self.stopped.is_set():
            conn.sendall(piece)


def _healthy(srv: BadServer, conn: socket.socket, path: str) -> None:
    conn.sendall(HEALTHY_ANSWER)


def _redirect_login(srv: BadServer, conn: socket.socket, path: str) -> None:
    """An nginx in front that sends everyone to its login page (credentials in the Location),
    which answers 200."""
    if path.startswith("/login"):
        page = b"<html><body><form>Sign in</form></body></html>"
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(page)}"
        conn.sendall(head.encode() + b"\r\nConnection: close\r\n\r\n" + page)
        return
    body = b"<html><body>301 Moved Permanently</body></html>"
    location = f"http://admin:hunter2@127.0.0.1:{srv.port}/login?next=/health"
    conn.sendall(
        b"HTTP/1.1 301 Moved Permanently\r\nContent-Type: text/html\r\nConnection: close\r\n"
        + f"Location: {location}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _redirect(srv: BadServer, conn: socket.socket, path: str) -> None:
    """A 302 to `redirect_to` (another port that answers healthy), with a healthy body."""
    body = json.dumps(HEALTHY).encode()
    conn.sendall(
        b"HTTP/1.1 302 Found\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Location: {srv.redirect_to}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _trickle_headers(srv: BadServer, conn: socket.socket, path: str) -> None:
    """The status line at once, then the headers at 1 byte/s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    srv.trickle(conn, HEALTHY_ANSWER.split(b"\r\n", 1)[1])


def _cut_headers(srv: BadServer, conn: socket.socket, path: str) -> None:
    """A 200 status line and half a header, then the connection closes."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: applic")


def _silent(srv: BadServer, conn: socket.socket, path: str) -> None:
    srv.stopped.wait(30)


def _broken_chunked(srv: BadServer, conn: socket.socket, path: str) -> None:
    """A chunk, then a chunk-size line that is not hex."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"sta\r\nzz\r\ntus": "healthy"}\r\n0\r\n\r\n'
    )


def _broken_chunked_late(srv: BadServer, conn: socket.socket, path: str) -> None:
    """A good chunk; a moment later a chunk-size line that is not hex, then the close."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"sta\r\n'
    )
    if not srv.stopped.wait(0.2):
        conn.sendall(b'zz\r\ntus": "healthy"}\r\n0\r\n\r\n')


def _chunk_cut(srv: BadServer, conn: socket.socket, path: str) -> None:
    """A chunk announced as 0x100 bytes; 10 arrive, then the connection closes."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'100\r\n{"status":'
    )


def _short_body(srv: BadServer, conn: socket.socket, path: str) -> None:
    """Content-Length 1000, a 15-byte body, then the connection closes."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        b'{"status": "he'
    )


def _endless(srv: BadServer, conn: socket.socket, path: str) -> None:
    """A 200 without a length whose body never ends."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
    srv.endless(conn, b"0," * 32768)


def _endless_chunked(srv: BadServer, conn: socket.socket, path: str) -> None:
    """A chunked 200 whose chunks never end."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    srv.endless(conn, b"10000\r\n" + b"x" * 65536 + b"\r\n")


def _gzip_anyway(srv: BadServer, conn: socket.socket, path: str) -> None:
    """A gzip body although the request asked for identity (a proxy's doing)."""
    body = gzip.compress(json.dumps(HEALTHY).encode())
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}"
    conn.sendall(head.encode() + b"\r\n\r\n" + body)


def _gzip_bomb(srv: BadServer, conn: socket.socket, path: str) -> None:
    """A small gzip body that inflates to 64 MiB."""
    body = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}"
    conn.sendall(head.encode() + b"\r\n\r\n" + body)


def _huge_length(srv: BadServer, conn: socket.socket, path: str) -> None:
    """Announces a 10 GB body (and sends a little of it)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n" + b"x" * 1000)


def _json_list(srv: BadServer, conn: socket.socket, path: str) -> None:
    conn.sendall(_json_answer(["healthy", "healthy"]))


def _json_string(srv: BadServer, conn: socket.socket, path: str) -> None:
    conn.sendall(_json_answer("healthy"))


BEHAVIOURS: dict[str, Callable[[BadServer, socket.socket, str], None]] = {
    "healthy": _healthy,
    "redirect-login": _redirect_login,
    "redirect": _redirect,
    "trickle-headers": _trickle_headers,
    "cut-headers": _cut_headers,
    "silent": _silent,
    "broken-chunked": _broken_chunked,
    "chunk-cut": _chunk_cut,
    "broken-chunked-late": _broken_chunked_late,
    "short-body": _short_body,
    "endless": _endless,
    "endless-chunked": _endless_chunked,
    "gzip-anyway": _gzip_anyway,
    "gzip-bomb": _gzip_bomb,
    "huge-length": _huge_length,
    "json-list": _json_list,
    "json-string": _json_string,
}
