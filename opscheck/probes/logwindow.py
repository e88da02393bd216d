"""The app log lines written while one request ran: a window between two marks.

`mark(path)` notes where the app log ends (inode and size) before the request;
`since(mark)` reads what was appended after it, at most `MAX_WINDOW` bytes. A rotation
in between (the inode changed) is followed: the rest of the old file is read where it
went (a sibling with the old inode, `app.log.1` under delaycompress) and the new file
from its start. What could not be read is said in `unseen`, never skipped quietly.

From the lines it counts the LLM and embeddings API calls per status (`httpx` INFO
lines) and keeps the LLM client's ERROR lines. Other requests may interleave in the
window on a busy service: the lines were written *during* the request, not by it.
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from opscheck.probes.logs.llm import kind
from opscheck.probes.noatime import open_binary
from opscheck.scrub import scrub

MAX_WINDOW = 8 << 20  # bytes read at most per window
HTTPX = re.compile(r' - httpx - INFO - HTTP Request: [A-Z]+ (\S+) "HTTP/[\d.]+ (\d{3})\b')
LLM_ERROR = re.compile(r" - src\.utils\.llm_client - ERROR - (.*)")
GENERATE = " - src.api.main - INFO - Request: POST /api/v1/templates/generate"
SHOWN = 3  # ERROR lines kept as samples


@dataclass(frozen=True)
class Mark:
    path: str
    inode: int | None = None  # None: no app log on this machine
    device: int = 0
    size: int = 0
    problem: str = ""  # why the app log could not even be looked at


@dataclass
class Window:
    """What was appended to the app log between a mark and now."""

    path: str
    local: bool = True  # False: the app log is not on this machine (nothing read)
    bytes_read: int = 0
    lines: int = 0
    generate_requests: int = 0  # "Request: POST /api/v1/templates/generate" lines
    calls: Counter[tuple[str, int]] = field(default_factory=Counter)  # (api, status)
    llm_errors: int = 0
    llm_error_samples: list[str] = field(default_factory=list)  # scrubbed, cut
    notes: list[str] = field(default_factory=list)  # how the window was read
    unseen: list[str] = field(default_factory=list)  # what could not be read

    def failed_calls(self) -> Counter[tuple[str, int]]:
        return Counter({k: n for k, n in self.calls.items() if not 200 <= k[1] < 300})

    def describe_failures(self) -> str:
        """'9 LLM calls answered 500, 1 embeddings call 401, 6 src.utils.llm_client
        ERROR lines (first: ...)', or '' when there were none."""
        parts = [
            f"{n} {api} call{'s' if n > 1 else ''} answered {status}"
            for (api, status), n in sorted(self.failed_calls().items())
        ]
        if self.llm_errors:
            s = "s" if self.llm_errors > 1 else ""
            parts.append(
                f"{self.llm_errors} src.utils.llm_client ERROR line{s} "
                f"(first: {self.llm_error_samples[0]!r})"
            )
        return ", ".join(parts)

    def describe_calls(self) -> str:
        """'LLM 200: 3, embeddings 200: 2', or 'none'."""
        shown = [f"{api} {status}: {n}" for (api, status), n in sorted(self.calls.items())]
        return ", ".join(shown) or "none"


def mark(path: str) -> Mark:
    """Where the app log ends now (call it just before the request)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Mark(path)
    except OSError as exc:
        return Mark(path, problem=f"cannot stat the app log {path}: {exc.strerror or exc}")
    if not stat.S_ISREG(st.st_mode):
        return Mark(path, problem=f"the app log {path} is not a regular file")
    return Mark(path, st.st_ino, st.st_dev, st.st_size)


def since(m: Mark, limit: int = MAX_WINDOW) -> Window:
    """The lines appended after `m`, read with at most `limit` bytes."""
    win = Window(m.path)
    if m.problem:
        win.unseen.append(m.problem)
        return win
    if m.inode is None:
        win.local = False
        return win
    try:
        data = _appended(m, limit, win)
    except OSError as exc:
        win.unseen.append(f"cannot read the app log {m.path}: {exc.strerror or exc}")
        return win
    _count(data, win)
    return win


def _appended(m: Mark, limit: int, win: Window) -> bytes:
    """The bytes written after the mark, following a rotation; notes what was done."""
    try:
        st = os.stat(m.path)
    except FileNotFoundError:
        st = None
    if st is not None and (st.st_ino, st.st_dev) == (m.inode, m.device):
        if st.st_size < m.size:
            win.unseen.append(
                f"{m.path} was truncated during the request (copytruncate?): "
                "the lines written before that are not seen"
            )
            return _read(m.path, 0, limit, win)
        return _read(m.path, m.size, limit, win)
    old = _renamed(m)
    parts = []
    if old is None:
        win.unseen.append(
            f"{m.path} was rotated during the request and the old file was not found "
            "beside it: the lines written before the rotation are not seen"
        )
    else:
        win.notes.append(f"rotated during the request: read the rest of {old.name}")
        parts.append(_read(str(old), m.size, limit, win))
    if st is None:
        win.unseen.append(f"{m.path} is gone (deleted or rotated without a new file)")
    else:
        win.notes.append(f"read the new {Path(m.path).name} from its start")
        parts.append(_read(m.path, 0, limit - sum(map(len, parts)), win))
    return b"\n".join(parts)


def _renamed(m: Mark) -> Path | None:
    """The sibling file that still has the marked inode (app.log.1, app.log-20261201)."""
    p = Path(m.path)
    try:
        with os.scandir(p.parent) as entries:
            for e in entries:
                same = e.name.startswith(p.name) and e.inode() == m.inode
                if same and e.is_file() and e.stat().st_dev == m.device:
                    return p.parent / e.name
    except OSError:
        return None
    return None


def _read(path: str, start: int, budget: int, win: Window) -> bytes:
    """Bytes from `start` to the end, at most `budget`; a larger rest is said in `unseen`."""
    with open_binary(path) as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(start)
        data = f.read(max(0, budget))
    win.bytes_read += len(data)
    rest = size - start - len(data)
    if rest > 0:
        win.unseen.append(
            f"{path} grew by {(size - start) / 2**20:.1f} MiB during the request: "
            f"read only the first {win.bytes_read / 2**20:.1f} MiB"
        )
    return data


def _count(data: bytes, win: Window) -> None:
    for raw in data.splitlines():
        if not raw:
            continue
        win.lines += 1
        line = raw.decode("utf-8", "replace")
        if GENERATE in line:
            win.generate_requests += 1
        elif (call := HTTPX.search(line)) is not None:
            api = _api(call.group(1))
            if api:
                win.calls[(api, int(call.group(2)))] += 1
        elif (err := LLM_ERROR.search(line)) is not None:
            win.llm_errors += 1
            if len(win.llm_error_samples) < SHOWN:
                win.llm_error_samples.append(scrub(err.group(1).strip())[:160])


def _api(url: str) -> str:
    """'LLM' for a messages call, 'embeddings' for an embeddings call, '' for others (the
    same rule as the daily log checks')."""
    target = url.split("://", 1)[-1].split("?", 1)[0].rstrip("/")
    return {"llm": "LLM", "embeddings": "embeddings"}.get(kind(target), "")
