"""The replica's own app log, written while it serves, in the real service's format.

`'%(asctime)s - %(name)s - %(levelname)s - %(message)s'` with `,mmm` milliseconds in
local time, appended to `<sandbox>/app/logs/app.log` (the file the daily log checks
read). Each call is one `write(2)` on a descriptor opened with O_APPEND, so lines of
concurrent requests never tear and a rotated or deleted file is followed at once;
a log that cannot be written is skipped, never an error of the request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

ANTHROPIC = "https://api.anthropic.com/v1/messages"
OPENAI_EMBEDDINGS = "https://api.openai.com/v1/embeddings"
REASONS = {200: "OK", 401: "Unauthorized", 500: "Internal Server Error", 529: "<none>"}
Record = tuple[str, str, str]  # (logger name, level, message)


def stamp(now: datetime) -> str:
    """asctime as Python logging writes it: local time, comma, milliseconds."""
    return f"{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d}"


def line(name: str, level: str, message: str, now: datetime | None = None) -> str:
    return f"{stamp(now or datetime.now())} - {name} - {level} - {message}\n"


def http_call(url: str, status: int) -> Record:
    """The `httpx` INFO record of one call to the LLM or embeddings API."""
    reason = REASONS.get(status, "")
    return "httpx", "INFO", f'HTTP Request: POST {url} "HTTP/1.1 {status} {reason}"'


class AppLog:
    """Appends records to one log file; `write` takes (logger, level, message) triples."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.enabled: Callable[[], bool] = lambda: True

    def write(self, *records: Record) -> None:
        """The records, stamped now, in one append."""
        if not records or not self.enabled():
            return
        now = datetime.now()
        data = "".join(line(name, level, msg, now) for name, level, msg in records)
        try:
            # (non-blocking: a FIFO in its place, the fifo-log fault, must not hang the replica)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK
            fd = os.open(self.path, flags, 0o644)
        except OSError:
            return
        try:
            os.write(fd, data.encode("utf-8", "surrogateescape"))
        except OSError:
            pass
        finally:
            os.close(fd)
