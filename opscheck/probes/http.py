"""HTTP probes: one request under one deadline, never raising, never following redirects.

The client is aiohttp. Its `ClientTimeout(total=...)` is one deadline for the whole
request: name resolution, connect, TLS handshake, sending, the status line, the headers
and every read of the body done while the response is open. (requests and urllib3 bound
each socket operation instead: a server trickling its headers one byte a second reset
their read timeout with every byte and held a check until pytest-timeout, 300 s.) Which
phase the deadline ended is followed with aiohttp's request tracing, so the error names it:
"cannot connect within 2 s", "no answer within 2 s (status line and headers not
complete)", "body not complete within 2 s (4096 bytes read)".

What a probe needs and no more: GET or POST with a JSON body, one connection per request
(`Connection: close`), `Accept-Encoding: identity` (a gzip or deflate body sent anyway is
decoded), no proxies from the environment (`trust_env=False`: the checks talk to the
target they are configured with), TLS with the system's or `ca_bundle`'s CAs. The body is
read in pieces and given up as soon as it passes `max_body_bytes` ([service]
max_body_bytes), counted after decoding, so memory stays bounded whatever the server
sends (an endless body, a gzip bomb). Redirects are answers, not followed
(`allow_redirects=False`): a 3xx is reported with its Location (credentials removed), so a
/health that redirects to a login page, or to another port that answers healthy, is never
taken for a healthy service. Broken framing (bad chunking, a body shorter than its
Content-Length, a connection cut mid-headers) is aiohttp's error, said in one line. One
gap of aiohttp 3.14's C parser: a bad chunk-size line that arrives after the head was
read is not handed to the body's reader, so such an answer ends at the deadline ("body
not complete within ...") instead of at once; it is still no answer.

The callers are synchronous (the checks, and the sampler thread of probes/load.py), so
each request runs on a fresh event loop in the calling thread, closed before returning.
That loop is not run with `asyncio.run`: at its end `asyncio.run` waits for the default
executor, where aiohttp's resolver runs `getaddrinfo`, and a name lookup that hangs
(a dead DNS server) would then hold the request past its deadline. Here the loop is
closed without waiting for it; the lookup's thread ends on its own (at the latest at the
resolver's own timeout, which the interpreter waits for when it exits).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import http_exceptions

from opscheck import __version__
from opscheck.scrub import redact_url, scrub

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # [service] max_body_bytes: /health is < 1 KiB,
# a generation answer a few KiB; 8 MiB is far above any real answer and bounds memory
READ_SIZE = 64 * 1024
HEADERS = {
    "User-Agent": f"opscheck/{__version__}",
    "Accept": "application/json",
    "Accept-Encoding": "identity",
}
DECODED = {"", "identity", "gzip", "deflate", "br", "zstd"}  # what aiohttp decodes
RESOLVE, CONNECT, HEAD, BODY = "resolve", "connect", "head", "body"
WHERE = {
    RESOLVE: "before connecting",
    CONNECT: "while connecting",
    HEAD: "before the answer",
    BODY: "mid-body",
}
T = TypeVar("T")


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
    try:
        status, headers, content = _run(
            _exchange(method, url, body, timeout_s, ca_bundle, max_body_bytes)
        )
    except _Failure as exc:
        result.error = scrub(str(exc))
    else:
        result.status, result.headers, result.body_bytes = status, headers, len(content)
        result.body, result.json_error = _parse_json(content, result.header("content-type"))
    result.elapsed_ms = (time.perf_counter() - start) * 1000.0
    return result


class _Failure(Exception):
    """No complete answer; the text is the one-line reason."""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a new event loop in this thread, like `asyncio.run` but without
    waiting for the default executor (a hung getaddrinfo) when closing the loop."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            if leftovers := asyncio.all_tasks(loop):
                for task in leftovers:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()  # shuts the default executor down without joining its threads


@dataclass
class _Progress:
    """How far one request got (followed by aiohttp's tracing), for the failure's text."""

    timeout_s: float
    host: str
    https: bool
    phase: str = CONNECT
    body_read: int = 0  # decoded body bytes taken so far
    length: int | None = None  # the Content-Length, once the headers are read

    def tracing(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_dns_resolvehost_start.append(self._enter(RESOLVE))
        trace.on_dns_resolvehost_end.append(self._enter(CONNECT))
        trace.on_connection_create_end.append(self._enter(HEAD))
        return trace

    def _enter(self, phase: str) -> Callable[..., Awaitable[None]]:
        async def enter(*_: Any) -> None:
            self.phase = phase

        return enter

    def missed(self) -> str:
        """The deadline ended in the current phase."""
        within = f"within {self.timeout_s:g} s"
        if self.phase == RESOLVE:
            return f"cannot connect: {self.host} not resolved {within}"
        if self.phase == CONNECT:
            return f"cannot connect {within}" + (
                " (TCP connect and TLS handshake)" if self.https else ""
            )
        if self.phase == HEAD:
            return f"no answer {within} (status line and headers not complete)"
        return f"body not complete {within} ({self.body_read} bytes read)"


async def _exchange(
    method: str, url: str, body: Any, timeout_s: float, ca_bundle: str, cap: int
) -> tuple[int, dict[str, str], bytes]:
    """Connect, send, read the whole answer: (status, headers, decoded body)."""
    parts = urlsplit(url)
    progress = _Progress(timeout_s, parts.hostname or "", parts.scheme == "https")
    context = _tls_context(ca_bundle) if progress.https else True
    # getaddrinfo, as the host's other tools resolve names, even when aiodns is installed
    resolver = aiohttp.ThreadedResolver()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, force_close=True, resolver=resolver),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        headers=HEADERS,
        trust_env=False,
        trace_configs=[progress.tracing()],
    ) as session:
        try:
            async with session.request(method, url, json=body, allow_redirects=False) as resp:
                progress.phase, progress.length = BODY, resp.content_length
                content = await _read_body(resp, cap, progress)
                return resp.status, _header_dict(resp.headers.items()), content
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _Failure(_explain(exc, progress, url)) from None


def _tls_context(ca_bundle: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_bundle or None)
    except (OSError, ssl.SSLError) as exc:
        raise _Failure(f"cannot use ca_bundle {ca_bundle}: {_reason(exc)}") from None


async def _read_body(resp: aiohttp.ClientResponse, cap: int, progress: _Progress) -> bytes:
    """The decoded body in pieces, given up as soon as it passes `cap` bytes."""
    coding = resp.headers.get("Content-Encoding", "").strip().lower()
    if coding not in DECODED:
        raise _Failure(f"unsupported Content-Encoding {coding[:40]!r}")
    if not coding and resp.content_length is not None and resp.content_length > cap:
        raise _Failure(f"a body of {resp.content_length} bytes (Content-Length), {_over_cap(cap)}")
    body = bytearray()
    while piece := await resp.content.read(READ_SIZE):
        body += piece
        progress.body_read = len(body)
        if len(body) > cap:
            decoded = "the decompressed body is " if coding not in ("", "identity") else ""
            raise _Failure(decoded + _over_cap(cap))
    return bytes(body)


def _header_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers as sent, a repeated name's values joined with ', '."""
    out: dict[str, str] = {}
    for name, value in pairs:
        known = next((k for k in out if k.lower() == name.lower()), None)
        if known:
            out[known] += ", " + value
        else:
            out[name] = value
    return out


def _explain(exc: Exception, progress: _Progress, url: str) -> str:
    """aiohttp's exception as a one-line reason that names the phase."""
    if isinstance(exc, TimeoutError):  # the total deadline
        return progress.missed()
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        why = getattr(cert, "verify_message", "") or _reason(cert)
        return f"cannot connect: TLS certificate refused: {why}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return f"cannot connect: TLS handshake failed: {_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return _disconnected(exc.message, progress)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _payload_problem(exc.__cause__, progress)
    if isinstance(exc, aiohttp.ClientResponseError):  # the status line or headers
        return _malformed(exc.__cause__ or exc.message)
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError)):
        return f"cannot connect: not an http(s) URL: {redact_url(url)[:120]}"
    if isinstance(exc, OSError):
        return f"connection broken {WHERE[progress.phase]}: {_reason(exc)}"
    return f"request failed {WHERE[progress.phase]}: {_one_line(str(exc))}"


def _disconnected(partial: Any, progress: _Progress) -> str:
    """The server closed the connection; `partial` is what aiohttp had parsed of the head."""
    if progress.phase == BODY:
        return f"body cut: connection closed after {progress.body_read} bytes"
    code = getattr(partial, "code", None)
    if code is None:
        return "connection closed before a status line"
    status = f"{code} {getattr(partial, 'reason', '')}".strip()
    return f"connection closed mid-headers (after the status {status!r}): no complete answer"


def _payload_problem(cause: BaseException | None, progress: _Progress) -> str:
    got = progress.body_read
    if isinstance(cause, http_exceptions.ContentLengthError):
        return f"body cut: connection closed after {got} of {progress.length} bytes"
    if isinstance(cause, http_exceptions.TransferEncodingError):
        return f"body cut: connection closed after {got} bytes (chunked)"
    if isinstance(cause, http_exceptions.ContentEncodingError):
        return f"a body that does not decompress ({got} bytes read): {_message(cause)}"
    return _malformed(cause) if cause else f"body broken after {got} bytes"


def _malformed(cause: BaseException | str) -> str:
    text = _message(cause)
    if "chunk" in text.lower():
        return f"broken chunked encoding: {text}"
    return f"not a valid HTTP answer: {text}"


def _message(exc: BaseException | str) -> str:
    """An aiohttp parser error's message on one line ('Invalid character in chunk size:
    b'zz''), without the position marker under it."""
    text = exc if isinstance(exc, str) else getattr(exc, "message", "") or str(exc)
    return _one_line(str(text))


def _one_line(text: str) -> str:
    lines = (line.strip() for line in text.splitlines())
    return " ".join(line for line in lines if line.strip("^")).strip()[:200] or "(no reason)"


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
    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)  # asyncio's text names the address: "Connect call failed"
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return (text or type(exc).__name__).strip()[:200]
