"""HTTP probes: one request under one deadline, never raising, never following redirects.

Why a small HTTP/1.1 reader of our own over a socket, and not requests or urllib3:
their timeouts bound each socket operation, not the request. A server that trickles
its headers one byte a second resets the read timeout with every byte (a check then
hung until pytest-timeout, 300 s), and http.client reads the status line and headers
before any code of ours can look at the clock. The other ways out are worse: a watchdog
thread that shuts the socket down at the deadline races the reader and cannot tell
which phase it cut; patching timeouts into urllib3's sockets before each read depends
on its internals. Here every `recv`, the connect, the TLS handshake and the send run
with the socket's timeout set to what is left of the one deadline, so the whole request
ends within `timeout_s` (plus at most a scheduler tick), and the error names the phase
it was in ("no status line within 2 s", "headers not complete within 2 s", "body not
complete within 2 s (4096 bytes read)").

What a probe needs and no more: GET or POST with a JSON body, `Connection: close` (one
request per connection), `Accept-Encoding: identity`, Content-Length, chunked or
read-to-close bodies, a byte cap on headers and body (memory stays bounded whatever the
server sends), interim 1xx answers skipped, TLS with the system's or `ca_bundle`'s CAs.
Redirects are answers, not followed: a 3xx is reported with its Location (credentials
removed), so a /health that redirects to a login page, or to another port that answers
healthy, is never taken for a healthy service. Proxy environment variables are not used:
the checks talk to the target they are configured with.

Name resolution has no timeout of its own in Python; for a host name (not an IP
literal) it runs in a daemon thread joined with the time left.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urljoin, urlsplit

from opscheck import __version__
from opscheck.scrub import redact_url, scrub

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # [service] max_body_bytes: /health is < 1 KiB,
# a generation answer a few KiB; 8 MiB is far above any real answer and bounds memory
MAX_LINE_BYTES = 8 * 1024  # the status line, one header line, one chunk-size line
MAX_HEADER_BYTES = 64 * 1024  # all header lines together
MAX_HEADER_LINES = 200
READ_SIZE = 64 * 1024
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9]\d\d)(?: .*)?")
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


@dataclass
class HttpResult:
    url: str  # credentials removed, safe to print
    status: int | None = None  # None: no complete HTTP answer (then `error` says why)
    elapsed_ms: float = 0.0  # client-side, from name resolution to the last byte
    body: Any = None  # the parsed JSON (any JSON value), or None
    headers: dict[str, str] = field(default_factory=dict)  # as sent; see `header()`
    error: str = ""  # why there was no complete answer (one line)
    body_bytes: int = 0  # size of the (decoded) body
    json_error: str = ""  # why `body` is None although the answer came ("" = it is JSON)

    @property
    def answered(self) -> bool:
        """A complete HTTP answer was read: status line, headers and the whole body."""
        return self.status is not None

    def header(self, name: str) -> str | None:
        """A header's value, the name matched without regard to case."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def location(self) -> str:
        """Where a 3xx points, absolute, credentials removed ("" = no Location)."""
        raw = self.header("location")
        if not raw:
            return ""
        return scrub(redact_url(urljoin(self.url, raw.strip())))[:300]

    @property
    def status_text(self) -> str:
        """The status with what explains it: '500 (HEALTH_CHECK_FAILED)', or
        '301 redirect to https://host/login' (redirects are not followed)."""
        if self.status is not None and 300 <= self.status < 400:
            where = f"to {self.location}" if self.location else "without a Location"
            return f"{self.status} redirect {where}"
        error = self.body.get("error") if isinstance(self.body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return f"{self.status} ({code})" if code else str(self.status)

    @property
    def object_body(self) -> dict[str, Any] | None:
        """The body when it is a JSON object, else None (see `object_problem`)."""
        return self.body if isinstance(self.body, dict) else None

    def object_problem(self) -> str:
        """Why the body is not a JSON object, in words ("" when it is one)."""
        if isinstance(self.body, dict):
            return ""
        if not self.answered:
            return self.error or "no answer"
        if self.json_error or self.body is None:
            return f"the answer is {self.json_error or 'not JSON'}"
        kind = _json_kind(self.body)
        excerpt = scrub(json.dumps(self.body, ensure_ascii=False))[:80]
        return f"the answer is a JSON {kind}, not an object: {excerpt}"


def get_json(
    base_url: str,
    path: str,
    timeout_s: float,
    ca_bundle: str = "",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> HttpResult:
    """GET `base_url + path`; the whole answer must arrive within `timeout_s`."""
    return request_json("GET", base_url, path, timeout_s, None, ca_bundle, max_body_bytes)


def post_json(
    base_url: str,
    path: str,
    body: Any,
    timeout_s: float,
    ca_bundle: str = "",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> HttpResult:
    """POST a JSON body; the whole answer must arrive within `timeout_s`."""
    return request_json("POST", base_url, path, timeout_s, body, ca_bundle, max_body_bytes)


def request_json(
    method: str,
    base_url: str,
    path: str,
    timeout_s: float,
    body: Any = None,
    ca_bundle: str = "",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> HttpResult:
    """One request, timed client side; never raises, `error` says what went wrong."""
    url = base_url.rstrip("/") + path
    result = HttpResult(redact_url(url))
    start = time.perf_counter()
    deadline = _Deadline(start + timeout_s, timeout_s)
    try:
        status, headers, content = _exchange(method, url, body, deadline, ca_bundle, max_body_bytes)
    except _Failure as exc:
        result.error = scrub(str(exc))
    else:
        result.status, result.headers, result.body_bytes = status, headers, len(content)
        result.body, result.json_error = _parse_json(content, result.header("content-type"))
    result.elapsed_ms = (time.perf_counter() - start) * 1000.0
    return result


class _Failure(Exception):
    """No complete answer; the text is the one-line reason."""


@dataclass(frozen=True)
class _Deadline:
    at: float  # perf_counter time
    timeout_s: float

    def left(self, phase: str) -> float:
        """Seconds left, or the failure that names `phase` when none are."""
        left = self.at - time.perf_counter()
        if left <= 0:
            raise _Failure(self.missed(phase))
        return left

    def missed(self, phase: str) -> str:
        return f"{phase} within {self.timeout_s:g} s"


def _exchange(
    method: str, url: str, body: Any, deadline: _Deadline, ca_bundle: str, cap: int
) -> tuple[int, dict[str, str], bytes]:
    """Connect, send, read the whole answer: (status, headers, decoded body)."""
    parts, host, port = _target(url)
    sock = _connect(host, port, deadline)
    try:
        if parts.scheme == "https":
            sock = _tls(sock, host, deadline, ca_bundle)
        _send(sock, _request_bytes(method, parts, body), deadline)
        wire = _Wire(sock, deadline)
        status, headers = _read_head(wire)
        content = _read_body(wire, method, status, headers, cap)
    finally:
        sock.close()
    return status, headers, _decode(content, _get(headers, "content-encoding"), cap)


def _target(url: str) -> tuple[SplitResult, str, int]:
    """The URL's parts, host and port, or the failure that says it is no http(s) URL."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    if parts.scheme not in ("http", "https") or not parts.hostname or not port:
        raise _Failure(f"cannot connect: not an http(s) URL: {redact_url(url)[:120]}")
    return parts, parts.hostname, port


def _connect(host: str, port: int, deadline: _Deadline) -> socket.socket:
    last: OSError | None = None
    for family, kind, proto, _, addr in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.left("cannot connect"))
            sock.connect(addr)
        except TimeoutError:
            sock.close()
            raise _Failure(deadline.missed("cannot connect")) from None
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise _Failure(f"cannot connect: {_reason(last) if last else 'no address'}")


def _resolve(host: str, port: int, deadline: _Deadline) -> list[tuple]:
    """getaddrinfo within the deadline (a daemon thread for names, none for IP literals)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            box["error"] = exc

    if _is_ip(host):
        run()
    else:
        thread = threading.Thread(target=run, name="opscheck-resolve", daemon=True)
        thread.start()
        thread.join(deadline.left("cannot connect"))
    if not box:
        raise _Failure(f"cannot connect: {host} not resolved within {deadline.timeout_s:g} s")
    if "error" in box:
        raise _Failure(f"cannot connect: {_reason(box['error'])}")
    return box["infos"]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _tls(sock: socket.socket, host: str, deadline: _Deadline, ca_bundle: str) -> ssl.SSLSocket:
    phase = "TLS handshake not complete"
    try:
        context = ssl.create_default_context(cafile=ca_bundle or None)
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise _Failure(f"cannot use ca_bundle {ca_bundle}: {_reason(exc)}") from None
    tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    try:
        tls.settimeout(deadline.left(phase))
        tls.do_handshake()  # one deadline for the whole handshake (CPython's _ssl)
    except _Failure:
        tls.close()
        raise
    except TimeoutError:
        tls.close()
        raise _Failure(deadline.missed(phase)) from None
    except ssl.SSLCertVerificationError as exc:
        tls.close()
        raise _Failure(f"cannot connect: TLS certificate refused: {exc.verify_message}") from None
    except (OSError, ssl.SSLError) as exc:
        tls.close()
        raise _Failure(f"cannot connect: TLS handshake failed: {_reason(exc)}") from None
    return tls


def _request_bytes(method: str, parts: SplitResult, body: Any) -> bytes:
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + parts.query
    host = parts.netloc.rpartition("@")[2]
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}",
        f"User-Agent: opscheck/{__version__}",
        "Accept: application/json",
        "Accept-Encoding: identity",
        "Connection: close",
    ]
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        lines.append("Authorization: Basic " + base64.b64encode(pair.encode()).decode())
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + data


def _send(sock: socket.socket, data: bytes, deadline: _Deadline) -> None:
    phase = "request not sent"
    try:
        sock.settimeout(deadline.left(phase))
        sock.sendall(data)  # one deadline for all of it (since Python 3.5)
    except TimeoutError:
        raise _Failure(deadline.missed(phase)) from None
    except OSError as exc:
        raise _Failure(f"connection {_reason(exc)} while sending the request") from None


class _Wire:
    """One connection's incoming bytes; every read bounded by the request's deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock, self.deadline = sock, deadline
        self.buf = bytearray()
        self.body_read = 0  # bytes of body taken so far, for the timeout message

    def fill(self, phase: str) -> bool:
        """Read what arrives into the buffer; False at the end of the stream."""
        left = self.deadline.at - time.perf_counter()
        if left <= 0:
            raise _Failure(self._missed(phase))
        try:
            self.sock.settimeout(left)
            data = self.sock.recv(READ_SIZE)
        except TimeoutError:
            raise _Failure(self._missed(phase)) from None
        except ssl.SSLError as exc:
            raise _Failure(f"connection broken {WHERE[phase]}: TLS: {_reason(exc)}") from None
        except OSError as exc:
            raise _Failure(f"connection {_reason(exc).lower()} {WHERE[phase]}") from None
        self.buf += data
        return bool(data)

    def _missed(self, phase: str) -> str:
        text = self.deadline.missed(phase)
        if phase == BODY:
            text += f" ({self.body_read + len(self.buf)} bytes read)"
        return text

    def line(self, phase: str, cut: str) -> bytes:
        """One line without its CR LF; `cut` is the failure when the stream ends first."""
        start = 0
        while (end := self.buf.find(b"\n", start)) < 0:
            if len(self.buf) > MAX_LINE_BYTES:
                raise _Failure(f"a line over {MAX_LINE_BYTES} bytes ({phase})")
            start = len(self.buf)
            if not self.fill(phase):
                raise _Failure(cut)
        if end > MAX_LINE_BYTES:
            raise _Failure(f"a line over {MAX_LINE_BYTES} bytes ({phase})")
        line = bytes(self.buf[:end]).rstrip(b"\r")
        del self.buf[: end + 1]
        return line

    def exact(self, n: int, cut: str) -> bytes:
        """The next `n` bytes; `cut` is the failure when the stream ends first."""
        while len(self.buf) < n:
            if not self.fill(BODY):
                raise _Failure(cut.format(got=self.body_read + len(self.buf)))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self.body_read += n
        return data

    def rest(self, cap: int) -> bytes:
        """Everything up to the end of the stream, at most `cap` bytes."""
        while self.fill(BODY):
            if len(self.buf) > cap:
                raise _Failure(_over_cap(cap))
        data = bytes(self.buf)
        self.buf.clear()
        return data


STATUS, HEADERS, BODY = "no status line", "headers not complete", "body not complete"
WHERE = {STATUS: "before the status line", HEADERS: "mid-headers", BODY: "mid-body"}


def _read_head(wire: _Wire) -> tuple[int, dict[str, str]]:
    """The final status and its headers (interim 1xx answers skipped)."""
    while True:
        first = wire.line(STATUS, "connection closed before a status line")
        match = STATUS_LINE.fullmatch(first)
        if not match:
            raise _Failure(f"not an HTTP answer: {first[:60]!r}")
        status = int(match.group(1))
        headers = _read_headers(wire, first.decode("latin-1"))
        if status >= 200 or status == 101:
            return status, headers


def _read_headers(wire: _Wire, status_line: str) -> dict[str, str]:
    cut = f"connection closed mid-headers (after {status_line[:60]!r}): no complete answer"
    headers: dict[str, str] = {}
    total, count, last = 0, 0, ""
    while line := wire.line(HEADERS, cut):
        total, count = total + len(line), count + 1
        if total > MAX_HEADER_BYTES or count > MAX_HEADER_LINES:
            raise _Failure(f"headers over {MAX_HEADER_BYTES} bytes or {MAX_HEADER_LINES} lines")
        text = line.decode("latin-1")
        if text[:1] in (" ", "\t") and last:  # an obsolete folded continuation
            headers[last] += " " + text.strip()
            continue
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            raise _Failure(f"malformed header line {text[:60]!r}")
        known = next((k for k in headers if k.lower() == name.lower()), None)
        if known:
            headers[known] += ", " + value.strip()
        else:
            headers[name] = value.strip()
        last = known or name
    return headers


def _get(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _read_body(wire: _Wire, method: str, status: int, headers: dict[str, str], cap: int) -> bytes:
    """The body as framed by Transfer-Encoding or Content-Length, else up to the close."""
    if method == "HEAD" or status in (101, 204, 304):
        return b""
    coding = _get(headers, "transfer-encoding")
    if coding is not None:
        codings = [c.strip().lower() for c in coding.split(",") if c.strip()]
        if codings == ["chunked"]:
            return _read_chunked(wire, cap)
        if "chunked" in codings:
            raise _Failure(f"unsupported Transfer-Encoding {coding[:40]!r}")
        return wire.rest(cap)
    length = _content_length(_get(headers, "content-length"))
    if length is None:
        return wire.rest(cap)
    if length > cap:
        raise _Failure(f"a body of {length} bytes (Content-Length), {_over_cap(cap)}")
    body = wire.exact(length, "body cut: connection closed after {got} of " + f"{length} bytes")
    if wire.buf:
        raise _Failure(f"more bytes than the Content-Length of {length} arrived")
    return body


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise _Failure(f"invalid Content-Length {value[:40]!r}")
    return int(values.pop())


def _read_chunked(wire: _Wire, cap: int) -> bytes:
    body = bytearray()
    while True:
        line = wire.line(BODY, f"body cut: connection closed after {len(body)} bytes (chunked)")
        size_text = line.split(b";", 1)[0].strip()
        if not CHUNK_SIZE.fullmatch(size_text):
            raise _Failure(f"broken chunked encoding: chunk size {size_text[:20]!r} is not hex")
        size = int(size_text, 16)
        if size == 0:
            _read_trailers(wire)
            return bytes(body)
        if len(body) + size > cap:
            raise _Failure(_over_cap(cap))
        chunk = wire.exact(size + 2, "body cut: connection closed inside a chunk ({got} bytes)")
        if chunk[-2:] != b"\r\n":
            raise _Failure(
                f"broken chunked encoding: a chunk of {size} bytes is not followed by CRLF"
            )
        body += chunk[:-2]


def _read_trailers(wire: _Wire) -> None:
    for _ in range(MAX_HEADER_LINES):
        if not wire.line(BODY, "body cut: connection closed in the chunked trailer"):
            return
    raise _Failure(f"a chunked trailer over {MAX_HEADER_LINES} lines")


def _decode(content: bytes, coding: str | None, cap: int) -> bytes:
    """The body without its Content-Encoding (gzip, deflate), never more than `cap`."""
    coding = (coding or "identity").strip().lower()
    if coding == "identity" or not content:
        return content
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise _Failure(f"unsupported Content-Encoding {coding[:40]!r}")
    inflater = zlib.decompressobj(47)  # gzip or zlib header, detected
    try:
        data = inflater.decompress(content, cap + 1)
    except zlib.error as exc:
        raise _Failure(f"a {coding} body that does not decompress: {exc}") from None
    if len(data) > cap or inflater.unconsumed_tail:
        raise _Failure(f"the decompressed body is {_over_cap(cap)}")
    return data


def _over_cap(cap: int) -> str:
    size = f"{cap / 1048576:g} MiB" if cap % 1048576 == 0 else f"{cap} bytes"
    return f"over the cap of {size} ([service] max_body_bytes)"


def _parse_json(content: bytes, content_type: str | None) -> tuple[Any, str]:
    """(the JSON value, "") or (None, what the body is instead)."""
    if not content.strip():
        return None, "empty"
    try:
        return json.loads(content), ""
    except ValueError:
        kind = (content_type or "no Content-Type").split(";")[0].strip()[:60]
        return None, f"not JSON ({kind}, {len(content)} bytes)"


def _json_kind(value: Any) -> str:
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _reason(exc: BaseException) -> str:
    """The innermost reason, e.g. 'Connection refused', without URLs or secrets."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return (text or type(exc).__name__).strip()[:200]
