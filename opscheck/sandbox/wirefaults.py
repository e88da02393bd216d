"""Server faults of the wire: how a broken proxy or a stuck server answers every request.

An ASGI middleware in front of the replica (installed by `app.py`), driven by the same
`run/sandbox.json` faults list. Each fault here answers every path (the readiness probe
excepted) the way a real failure does, without reaching the app:

- `hang`: accepts the request and never answers (sleeps an hour; `down` ends it).
- `trickle`: a 200 JSON answer sent one byte every 0.25 s (a saturated proxy, a slow
  link): the status line comes at once, the whole answer takes minutes.
- `non-json`: 200 text/html, an HTML page (nginx's default page in front of a dead
  upstream, a captive portal).
- `huge-body`: 200 application/json, an endless body (a debug dump, a streaming bug),
  sent until the client goes away or 64 MiB were sent.
- `redirect`: 302 to /login on the same host (an auth wall put in front of the API).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

WIRE_FAULTS = ("hang", "trickle", "non-json", "huge-body", "redirect")
HTML = b"<html><head><title>Welcome to nginx!</title></head><body>Welcome</body></html>\n"
TRICKLE = b'{"status": "healthy", "components": {}}'
HUGE_CAP = 64 << 20
PIECE = b'{"pad": "' + b"x" * (64 * 1024 - 10) + b'"}\n'


class WireFaults:
    """Answers as the first wire fault in force says, else hands the request on."""

    def __init__(self, inner: Any, faults: Callable[[], list[str]], exempt: str) -> None:
        self.inner = inner
        self.faults = faults
        self.exempt = exempt

    async def __call__(self, scope, receive, send) -> None:
        fault = None
        if scope["type"] == "http" and scope["path"] != self.exempt:
            fault = next((f for f in WIRE_FAULTS if f in self.faults()), None)
        if fault is None:
            await self.inner(scope, receive, send)
            return
        await ANSWERS[fault](scope, send)


async def _start(send, status: int, content_type: bytes, extra=()) -> None:
    headers = [(b"content-type", content_type), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _hang(scope, send) -> None:
    await asyncio.sleep(3600)


async def _trickle(scope, send) -> None:
    await _start(send, 200, b"application/json", [(b"content-length", b"%d" % len(TRICKLE))])
    for byte in TRICKLE:
        await send({"type": "http.response.body", "body": bytes([byte]), "more_body": True})
        await asyncio.sleep(0.25)
    await send({"type": "http.response.body", "body": b""})


async def _non_json(scope, send) -> None:
    await _start(send, 200, b"text/html", [(b"content-length", b"%d" % len(HTML))])
    await send({"type": "http.response.body", "body": HTML})


async def _huge_body(scope, send) -> None:
    await _start(send, 200, b"application/json")
    sent = 0
    while sent < HUGE_CAP:
        await send({"type": "http.response.body", "body": PIECE, "more_body": True})
        sent += len(PIECE)
    await send({"type": "http.response.body", "body": b""})


async def _redirect(scope, send) -> None:
    await _start(
        send, 302, b"text/plain", [(b"location", b"/login?next=" + scope["path"].encode())]
    )
    await send({"type": "http.response.body", "body": b"Found\n"})


ANSWERS = {
    "hang": _hang,
    "trickle": _trickle,
    "non-json": _non_json,
    "huge-body": _huge_body,
    "redirect": _redirect,
}
