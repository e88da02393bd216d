"""One streaming pass over a log file, in bytes, in large chunks.

The app log (`%(asctime)s - %(name)s - %(levelname)s - %(message)s`) is read 4 MiB
at a time; counting is done by C-level searches (`bytes.count`, regexes anchored on a
literal such as " - ERROR - "), so Python only touches the few lines that matter:
responses, requests, errors, warnings, and API-key-shaped strings. A line's hour is
read from its own timestamp. Undecodable bytes are kept as bytes and decoded with
replacement only for signatures; a line longer than `MAX_LINE` is cut and counted.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from opscheck.probes.logs.summary import Hist, Summary
from opscheck.scrub import scrub

CHUNK = 4 << 20
MAX_LINE = 1 << 20  # a longer line is cut here (counted in Summary.overlong)
STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

RESPONSE = re.compile(rb" - INFO - Response: (\d{3}) - ([\d.]+)s")
FAILED = re.compile(rb" - ERROR - Request failed: [^\n]*?([\d.]+)s[ \t\r]*$", re.M)
REQUEST = re.compile(rb" - INFO - Request: ([A-Z]+) (\S+)")
ERROR = re.compile(rb" - ERROR - ([^\n]*)((?:\n(?!\d{4}-\d\d-\d\d )[^\n]*)*)")
WARNING = re.compile(rb" - WARNING - ([^\n]*)")
KEY = re.compile(rb"sk-ant-[A-Za-z0-9_\-]{8,}|sk-(?:proj-)?[A-Za-z0-9]{20,}")
LEVELS = (b"DEBUG", b"INFO", b"WARNING", b"ERROR", b"CRITICAL")
GENERATE = "POST /api/v1/templates/generate"

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b")
_ID = re.compile(r"\b[A-Za-z]+[_-](?=[A-Za-z0-9]*\d)[A-Za-z0-9]{6,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@functools.lru_cache(maxsize=1 << 16)
def signature(logger: bytes, message: bytes, tail: bytes = b"") -> str:
    """A message with its ids, numbers, quoted values and hex made generic."""
    text = scrub(message.decode("utf-8", "replace").strip())
    text = _QUOTED.sub("'…'", text)
    text = _UUID.sub("<uuid>", text)
    text = _ID.sub("<id>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)[:300]
    sig = f"{logger.decode('ascii', 'replace')}: {text}"
    if tail:
        last = tail.strip().rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
        exc = last.split(":", 1)[0].strip()
        if exc and " " not in exc:
            sig += f" [{exc}]"
    return sig


def _line_start(buf: bytes, pos: int) -> int:
    return buf.rfind(b"\n", 0, pos) + 1


def _hour_and_logger(buf: bytes, pos: int) -> tuple[str, bytes] | None:
    """The hour key and logger name of the line holding `pos` (None: no timestamp)."""
    start = _line_start(buf, pos)
    head = buf[start:pos]
    if len(head) < 26 or not STAMP.match(head):
        return None
    logger = head.split(b" - ", 2)[1] if head.count(b" - ") >= 1 else b"?"
    return head[:13].decode("ascii"), logger


@dataclass
class AppScanner:
    """Accumulates one app log's Summary from complete lines."""

    name: str
    summary: Summary
    line_base: int = 0  # lines before the current chunk, for key positions

    def feed(self, buf: bytes) -> None:
        s = self.summary
        newlines = buf.count(b"\n")
        s.lines += newlines
        stamped = 0
        for level in LEVELS:
            n = buf.count(b" - " + level + b" - ")
            if n:
                s.levels[level.decode()] += n
                stamped += n
        s.continuation += max(0, newlines - stamped)
        for m in RESPONSE.finditer(buf):
            where = _hour_and_logger(buf, m.start())
            if where is None:
                continue
            h = s.hour(where[0])
            h.requests += 1
            h.status[m.group(1)[:1].decode() + "xx"] += 1
            h.latency.add(float(m.group(2)) * 1000.0)
        for m in FAILED.finditer(buf):
            where = _hour_and_logger(buf, m.start())
            if where is None:
                continue
            h = s.hour(where[0])
            h.requests += 1
            h.status["5xx"] += 1
            h.latency.add(float(m.group(1)) * 1000.0)
        for m in REQUEST.finditer(buf):
            where = _hour_and_logger(buf, m.start())
            if where is None:
                continue
            endpoint = f"{m.group(1).decode()} {m.group(2).decode('utf-8', 'replace')[:80]}"
            h = s.hour(where[0])
            h.endpoints[endpoint] += 1
            if endpoint == GENERATE:
                h.generations += 1
        for m in ERROR.finditer(buf):
            where = _hour_and_logger(buf, m.start())
            if where is None:
                continue
            s.hour(where[0]).errors[signature(where[1], m.group(1), m.group(2))] += 1
        for m in WARNING.finditer(buf):
            where = _hour_and_logger(buf, m.start())
            if where is None:
                continue
            s.hour(where[0]).warnings[signature(where[1], m.group(1))] += 1
        for m in KEY.finditer(buf):
            if len(s.key_hits) < 100:
                line = self.line_base + buf.count(b"\n", 0, m.start()) + 1
                s.key_hits.append(f"{self.name}:{line}")
        self.line_base += newlines


def complete_lines(f: BinaryIO, end: int | None, summary: Summary) -> Iterator[bytes]:
    """Chunks of whole lines from `f` up to byte `end` (None: to EOF); a final line
    without a newline is yielded too (a closed file's last line is complete)."""
    carry, skipping, read = b"", False, 0
    while True:
        want = CHUNK if end is None else min(CHUNK, end - read)
        data = f.read(want) if want > 0 else b""
        read += len(data)
        if not data:
            if carry and not skipping:
                yield carry + b"\n"
            return
        if skipping:  # inside an overlong line: drop up to its end
            nl = data.find(b"\n")
            if nl < 0:
                continue
            data, skipping = data[nl + 1 :], False
        data = carry + data
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
        carry = data[cut:]
        if len(carry) > MAX_LINE:
            summary.overlong += 1
            carry, skipping = b"", True


def scan_app(f: BinaryIO, name: str, end: int | None = None, line_base: int = 0) -> Summary:
    """One pass over an app log stream; returns its Summary."""
    summary = Summary(latency_source="app log (server side)")
    scanner = AppScanner(name, summary, line_base)
    for chunk in complete_lines(f, end, summary):
        scanner.feed(chunk)
    return summary


ACCESS = re.compile(
    rb"^(\S+) \S+ \S+ \[(\d\d)/(\w{3})/(\d{4}):(\d\d):(\d\d):\d\d [^\]]*\] "
    rb'"(\S+) (\S+)[^"]*" (\d{3}) \S+ "[^"]*" "[^"]*"(?: ([\d.]+))?',
    re.M,
)
MONTHS = {
    m.encode(): f"{i:02d}"
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
PROBE_PATH = re.compile(
    r"^/(?:\.env|\.git|\.aws|\.ssh|\.DS_Store|wp-admin|wp-login|xmlrpc\.php|phpmyadmin|pma|"
    r"admin\.php|config\.php|server-status|actuator|vendor/phpunit|cgi-bin)",
    re.I,
)
RATE_FLOOR = 20  # per-minute peaks below this are not kept (the limit is 100)
AUTH_FLOOR = 5


@dataclass
class AccessScanner:
    """nginx combined format, with `$request_time` appended when present."""

    name: str
    summary: Summary
    line_base: int = 0

    def __post_init__(self) -> None:
        self.minutes: dict[bytes, Counter] = {}
        self.auth: dict[bytes, Counter] = {}

    def feed(self, buf: bytes) -> None:
        s = self.summary
        lines = buf.count(b"\n")
        s.lines += lines
        parsed = 0
        for m in ACCESS.finditer(buf):
            parsed += 1
            client, day, mon, year, hh, mm, method, target, status, rt = m.groups()
            key = f"{year.decode()}-{MONTHS.get(mon, '00')}-{day.decode()} {hh.decode()}"
            h = s.hour(key)
            code = status.decode()
            h.requests += 1
            h.status[code[0] + "xx"] += 1
            path = target.split(b"?", 1)[0].decode("utf-8", "replace")[:80]
            endpoint = f"{method.decode('ascii', 'replace')} {path}"
            h.endpoints[endpoint] += 1
            if endpoint == GENERATE:
                h.generations += 1
            if rt is not None:
                ms = float(rt) * 1000.0
                h.latency.add(ms)
                h.endpoint_latency.setdefault(endpoint, Hist()).add(ms)
            minute = key.encode() + b":" + mm
            self._count(self.minutes, minute, client, s.clients_over_rate, RATE_FLOOR)
            if code in ("401", "403"):
                self._count(self.auth, minute, client, s.auth_bursts, AUTH_FLOOR)
            if PROBE_PATH.match(path):
                s.probe_hits[f"{key}|{client.decode('ascii', 'replace')} {path} {code}"] += 1
        s.unparsed += max(0, lines - parsed)
        for m in KEY.finditer(buf):
            if len(s.key_hits) < 100:
                line = self.line_base + buf.count(b"\n", 0, m.start()) + 1
                s.key_hits.append(f"{self.name}:{line}")
        self.line_base += lines

    @staticmethod
    def _count(per_minute: dict, minute: bytes, client: bytes, peaks: dict, floor: int) -> None:
        counter = per_minute.get(minute)
        if counter is None:
            counter = per_minute[minute] = Counter()
            if len(per_minute) > 4:  # keep a few minutes open for lines slightly out of order
                oldest = min(per_minute)
                for c, n in per_minute.pop(oldest).items():
                    if n >= floor:
                        name = f"{oldest[:13].decode()}|{c.decode('ascii', 'replace')}"
                        peaks[name] = max(n, peaks.get(name, 0))
        counter[client] += 1

    def close(self) -> None:
        for per_minute, peaks, floor in (
            (self.minutes, self.summary.clients_over_rate, RATE_FLOOR),
            (self.auth, self.summary.auth_bursts, AUTH_FLOOR),
        ):
            for minute, counter in per_minute.items():
                for c, n in counter.items():
                    if n >= floor:
                        name = f"{minute[:13].decode()}|{c.decode('ascii', 'replace')}"
                        peaks[name] = max(n, peaks.get(name, 0))
            per_minute.clear()


def scan_access(f: BinaryIO, name: str, end: int | None = None, line_base: int = 0) -> Summary:
    """One pass over an nginx access log stream; returns its Summary."""
    summary = Summary(latency_source="access log ($request_time, client side)")
    scanner = AccessScanner(name, summary, line_base)
    for chunk in complete_lines(f, end, summary):
        scanner.feed(chunk)
    scanner.close()
    return summary
