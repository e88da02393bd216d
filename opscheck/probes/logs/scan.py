"""One streaming pass over a log file, in bytes, in large chunks.

The app log (`%(asctime)s - %(name)s - %(levelname)s - %(message)s`) is read 4 MiB
at a time into a buffer that starts with the newline before its first line. Each
pattern below starts with a literal that is rare in a log line, so the regex engine
skips the other lines at C speed; a full pass costs about 1.5 ms a MiB.

- ERROR, WARNING and CRITICAL records (about 1 % of lines) are found one by one over
  the whole buffer, each with the hour of the line it sits on.
- Request and Response lines (about 40 % of lines) are too many for that: the buffer
  is cut into runs of one clock hour (found by the next hour's prefix), and each run
  is read by one `findall`, counted with `Counter`, so Python touches each distinct
  value once, not each line. A run is only taken whole if every line in it has that
  hour (the buffer's line count checks it); runs that do not (lines out of order,
  clock jumps, stray lines) are read line by line with their own hours.

Undecodable bytes stay bytes until a signature is made; a line longer than
`MAX_LINE` is cut and counted.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from opscheck.probes.logs.summary import Hist, Summary, bucket
from opscheck.scrub import scrub

CHUNK = 4 << 20
MAX_LINE = 1 << 20  # a longer line is cut here (counted in Summary.overlong)

_TAIL = rb"((?:\n(?![12]\d{3}-)[^\n]+)*)"  # continuation lines (a traceback) of a record
LEVELS = (b"ERROR", b"CRITICAL", b"WARNING")
LEVELED = {lv: re.compile(lv + rb" - ([^\n]*)" + _TAIL) for lv in LEVELS}
# "R" is rare in a log line, "INFO - R" is not: the match is checked after the fact
TRAFFIC = re.compile(rb"Re(?:sponse|quest): ([^\n]+)")
RESPONSE = re.compile(rb"(\d)\d\d - (\d+(?:\.\d+)?)s\s*")
REQUEST = re.compile(rb"([A-Z]+) (/\S*)\s*")
# what precedes the level of a genuine record: "2026-11-25 14:03:07,123 - src.api.main - "
RECORD_HEAD = re.compile(rb"([12]\d{3}-\d\d-\d\d \d\d):\d\d:\d\d\S* - ((?:[^ \n]| (?!- ))+) - ")
HOUR_AT = re.compile(rb"\n([12]\d{3}-\d\d-\d\d \d\d):")
LINE_HOURLY = re.compile(rb"\n([12]\d{3}-\d\d-\d\d \d\d):\d\d:\d\d[^\n]*? - INFO - ([^\n]*)")
FAILED_SECS = re.compile(rb"Request failed:.*?([\d.]+)s\s*$")
# "k-" is rarer than "sk-" (the engine scans for the first byte); the "s" is checked after
KEY = re.compile(rb"k-(?:ant-[A-Za-z0-9_\-]{8,}|(?:proj-)?[A-Za-z0-9]{20,})")
GENERATE = "POST /api/v1/templates/generate"

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b")
_ID = re.compile(r"\b[A-Za-z]+[_-](?=[A-Za-z0-9]*\d)[A-Za-z0-9]{6,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@functools.lru_cache(maxsize=1 << 16)
def signature(message: bytes, tail: bytes = b"") -> str:
    """A message with its ids, numbers, quoted values and hex made generic, and the
    exception type of a traceback that followed it."""
    text = scrub(message.decode("utf-8", "replace").strip())
    text = _QUOTED.sub("'…'", text)
    text = _UUID.sub("<uuid>", text)
    text = _ID.sub("<id>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)[:300]
    sig = text
    if tail:
        last = tail.strip().rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
        exc = last.split(":", 1)[0].strip()
        if exc and " " not in exc:
            sig += f" [{exc}]"
    return sig


@functools.lru_cache(maxsize=4096)
def _next_hour(hour: bytes) -> bytes | None:
    """The line prefix of the clock hour after `hour` (b"2026-11-25 14")."""
    try:
        later = datetime.strptime(hour.decode(), "%Y-%m-%d %H") + timedelta(hours=1)
    except ValueError:
        return None
    return b"\n" + later.strftime("%Y-%m-%d %H").encode() + b":"


LOOK_BACK = 64 << 10  # how far from the end to look for the buffer's last line of an hour
_CONTINUATION = re.compile(rb"(?:\n(?![12]\d{3}-)[^\n]+)*")


def _line_end(buf: bytes, pos: int, stop: int) -> int:
    """Where the record on the line holding `pos` ends: before the newline that starts
    the next timestamped line (or `stop`)."""
    nl = buf.find(b"\n", pos + 1, stop)
    return stop if nl < 0 else _CONTINUATION.match(buf, nl, stop).end()


def _runs(buf: bytes, stop: int) -> Iterator[tuple[bytes, int, int]]:
    """(hour prefix, start, end) runs of buf[:stop]: from the first line of an hour to
    before the first line of the next hour, or to the last line of this hour."""
    pos = 0
    while pos < stop:
        m = HOUR_AT.search(buf, pos, stop)
        if m is None:
            yield b"", pos, stop
            return
        prefix = b"\n" + m.group(1) + b":"
        last = buf.rfind(prefix, max(m.start(), stop - LOOK_BACK), stop)
        if last < 0 or _line_end(buf, last, stop) != stop:  # later hours follow
            nxt = _next_hour(m.group(1))
            end = buf.find(nxt, m.end(), stop) if nxt else -1
            if end < 0:  # no line of the next hour: to the last line of this one
                end = _line_end(buf, buf.rfind(prefix, m.start(), stop), stop)
        else:
            end = stop
        yield prefix, pos, end
        pos = end


class _Traffic:
    """What a value after "Request: " or "Response: " says, worked out once per distinct
    value into a small int (hashed and counted fast) and the value's milliseconds.

    A code > 0 is a Response: status digit * 10**6 + histogram bucket; a code < 0 is
    endpoint number -code; 0 is another shape (another logger's line, such as httpx's
    "HTTP Request: POST https://...").
    """

    def __init__(self) -> None:
        self.code: dict[bytes, int] = {}
        self.ms: dict[bytes, float] = {}
        self.endpoints: list[str] = [""]
        self.numbers: dict[str, int] = {}

    def learn(self, values: set[bytes]) -> None:
        if len(self.code) > 200_000:
            self.code.clear()
            self.ms.clear()
        for value in values - self.code.keys():
            code, ms = 0, 0.0
            if m := RESPONSE.fullmatch(value):
                ms = float(m.group(2)) * 1000.0
                code = int(m.group(1)) * 10**6 + bucket(ms)
            elif m := REQUEST.fullmatch(value):
                ep = f"{m.group(1).decode()} {m.group(2).decode('utf-8', 'replace')[:80]}"
                code = -self.numbers.setdefault(ep, len(self.endpoints))
                if -code == len(self.endpoints):
                    self.endpoints.append(ep)
            self.code[value], self.ms[value] = code, ms


_traffic = _Traffic()


@dataclass
class AppScanner:
    """Accumulates one app log's Summary from buffers of complete lines."""

    name: str
    summary: Summary
    line_base: int = 0  # lines before the current buffer, for key positions

    def feed(self, buf: bytes, stop: int) -> None:
        """Read buf[:stop]: a newline, then whole lines separated by newlines."""
        s = self.summary
        newlines = buf.count(b"\n", 0, stop)
        for m in KEY.finditer(buf, 0, stop):
            if buf[m.start() - 1 : m.start()] == b"s" and len(s.key_hits) < 100:
                line = self.line_base + buf.count(b"\n", 0, m.start())
                s.key_hits.append(f"{self.name}:{line}")
        tails = self._records(buf, stop)
        runs = list(_runs(buf, stop))
        counted = sum(tails.values()) + sum(buf.count(p, a, b) for p, a, b in runs if p)
        for prefix, a, b in runs:
            if prefix and (counted == newlines or _pure(buf, prefix, a, b, tails)):
                self._traffic(prefix[1:-1].decode(), TRAFFIC.findall(buf, a, b))
                continue
            for hour, value in LINE_HOURLY.findall(buf, a, b):
                if m := TRAFFIC.match(value):
                    self._traffic(hour.decode(), [m.group(1)])
        s.lines += newlines
        self.line_base += newlines

    def _records(self, buf: bytes, stop: int) -> dict[int, int]:
        """Count the ERROR, CRITICAL and WARNING records of buf[:stop] under the hour of
        their line; returns {position: continuation lines} of the records."""
        tails: dict[int, int] = {}
        seen: Counter = Counter()
        for level in LEVELS:
            for m in LEVELED[level].finditer(buf, 0, stop):
                start = buf.rfind(b"\n", 0, m.start()) + 1
                head = RECORD_HEAD.fullmatch(buf, start, m.start())
                if head is None:  # the word inside a message, not the record's level
                    continue
                msg, tail = m.groups()
                tails[start] = tail.count(b"\n")
                seen[(head.group(1), level, msg, tail)] += 1
        for (hour, level, msg, tail), n in seen.items():
            self._leveled(hour.decode(), level, msg, tail, n)
        return tails

    def _leveled(self, hour: str, level: bytes, msg: bytes, tail: bytes, n: int) -> None:
        s = self.summary
        s.levels[level.decode()] += n
        if tail:
            s.continuation += n * tail.count(b"\n")
        h = s.hour(hour)
        if level == b"WARNING":
            h.warnings[signature(msg)] += n
            return
        h.errors[signature(msg, tail)] += n
        failed = FAILED_SECS.search(msg) if msg.startswith(b"Request failed:") else None
        if failed:  # answered 500 by the exception handler, without a Response line
            h.requests += n
            h.status["5xx"] += n
            h.latency.add(float(failed.group(1)) * 1000.0, n)

    def _traffic(self, hour: str, values: list[bytes]) -> None:
        """The Request and Response lines of one hour: their values are looked up and
        counted at C level; Python sees each distinct endpoint and (status, bucket)."""
        if not values:
            return
        h = self.summary.hour(hour)
        _traffic.learn(set(values))
        h.latency.total_ms += sum(map(_traffic.ms.__getitem__, values))
        for code, n in Counter(map(_traffic.code.__getitem__, values)).items():
            if code < 0:
                ep = _traffic.endpoints[-code]
                h.endpoints[ep] += n
                h.generations += n if ep == GENERATE else 0
            elif code > 0:
                digit, b = divmod(code, 10**6)
                h.requests += n
                h.status[f"{digit}xx"] += n
                h.latency.counts[b] += n
                h.latency.n += n


def _pure(buf: bytes, prefix: bytes, a: int, b: int, tails: dict[int, int]) -> bool:
    """Whether every line of buf[a:b] is of the hour `prefix` or continues a record."""
    carried = sum(n for pos, n in tails.items() if a <= pos < b)
    return buf.count(prefix, a, b) + carried == buf.count(b"\n", a, b)


def complete_lines(f: BinaryIO, end: int | None, summary: Summary) -> Iterator[tuple[bytes, int]]:
    """(buffer, stop) pairs from `f` up to byte `end` (None: to EOF): buffer[0] is a
    newline and buffer[:stop] holds whole lines, each after a newline. A final line
    without a newline is yielded too (a closed file's last line is complete)."""
    carry, skipping, read = b"\n", False, 0
    while True:
        want = CHUNK if end is None else min(CHUNK, end - read)
        data = f.read(want) if want > 0 else b""
        read += len(data)
        if not data:
            if len(carry) > 1 and not skipping:
                yield carry, len(carry)
            return
        if skipping:  # inside an overlong line: drop up to its end
            nl = data.find(b"\n")
            if nl < 0:
                continue
            data, skipping = data[nl:], False
        data = carry + data
        stop = data.rfind(b"\n")
        if stop > 0:
            yield data, stop
            carry = data[stop:]
        else:
            carry = data
        if len(carry) > MAX_LINE:
            summary.overlong += 1
            carry, skipping = b"", True


def scan_app(f: BinaryIO, name: str, end: int | None = None, line_base: int = 0) -> Summary:
    """One pass over an app log stream; returns its Summary."""
    summary = Summary(latency_source="app log (server side)")
    scanner = AppScanner(name, summary, line_base)
    for buf, stop in complete_lines(f, end, summary):
        scanner.feed(buf, stop)
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

    def feed(self, buf: bytes, stop: int) -> None:
        """Read buf[:stop]: a newline, then whole lines separated by newlines."""
        s = self.summary
        lines = buf.count(b"\n", 0, stop)
        s.lines += lines
        parsed = 0
        for m in ACCESS.finditer(buf, 0, stop):
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
        for m in KEY.finditer(buf, 0, stop):
            if buf[m.start() - 1 : m.start()] == b"s" and len(s.key_hits) < 100:
                line = self.line_base + buf.count(b"\n", 0, m.start())
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
    for buf, stop in complete_lines(f, end, summary):
        scanner.feed(buf, stop)
    scanner.close()
    return summary
