"""One streaming pass over a log file, in bytes, in large chunks.

The app log (`%(asctime)s - %(name)s - %(levelname)s - %(message)s`) is read 4 MiB
at a time. Each chunk is cut into runs of lines of one clock hour (found with
`rfind` on the hour's prefix); a run whose every timestamped line has that hour is
"pure" and is read by one C-level `findall` of a single pattern that keeps only the
lines that matter (errors, warnings, responses, requests), counted with `Counter`,
so Python touches each distinct line shape once, not each line. Runs that are not
pure (lines out of order, clock jumps) are read by a pattern that also captures each
line's own hour. Undecodable bytes stay bytes until a signature is made; a line
longer than `MAX_LINE` is cut and counted.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import filterfalse
from operator import itemgetter
from typing import BinaryIO

from opscheck.probes.logs.summary import Hist, Summary, bucket
from opscheck.scrub import scrub

CHUNK = 4 << 20
MAX_LINE = 1 << 20  # a longer line is cut here (counted in Summary.overlong)

_TAIL = rb"((?:\n(?![12]\d{3}-)[^\n]+)*)"  # continuation lines (a traceback) of an ERROR
# Each pattern starts with a literal that only the lines it wants contain, so the regex
# engine skips the other lines at C speed (an alternation up front would defeat that).
LEVELS = (b"ERROR", b"CRITICAL", b"WARNING")
LEVELED = {lv: re.compile(lv + rb" - ([^\n]*)" + _TAIL) for lv in LEVELS}
TRAFFIC = re.compile(rb"INFO - Re(?:sponse: (\d)\d\d - ([\d.]+)s|quest: ([A-Z]+) (\S+))")
# the same, for runs whose lines are not all of one hour: each line's own hour
_HOUR = rb"\n([12]\d{3}-\d\d-\d\d \d\d):\d\d:\d\d[^\n]*? - "
LEVELED_HOURLY = re.compile(_HOUR + rb"(ERROR|CRITICAL|WARNING) - ([^\n]*)" + _TAIL)
TRAFFIC_HOURLY = re.compile(
    _HOUR + rb"INFO - Re(?:sponse: (\d{3}) - ([\d.]+)s|quest: ([A-Z]+) (\S+))"
)
HOUR_AT = re.compile(rb"\n([12]\d{3}-\d\d-\d\d \d\d):")
FAILED_SECS = re.compile(rb"Request failed:.*?([\d.]+)s\s*$")
KEY = re.compile(rb"sk-ant-[A-Za-z0-9_\-]{8,}|sk-(?:proj-)?[A-Za-z0-9]{20,}")
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


def _runs(buf: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(hour prefix, lines) runs of a chunk that starts with a newline: from the first
    line of an hour to the last line of that hour in the chunk (with its traceback)."""
    pos, end = 0, len(buf)
    while pos < end:
        m = HOUR_AT.search(buf, pos)
        if m is None:
            yield b"", buf[pos:]
            return
        prefix = b"\n" + m.group(1) + b":"
        last = buf.rfind(prefix, pos)
        stop = buf.find(b"\n", last + 1)
        stop = end if stop < 0 else _past_continuation(buf, stop)
        yield prefix, buf[pos:stop]
        pos = stop


_CONTINUATION = re.compile(rb"(?:\n(?![12]\d{3}-)[^\n]+)*")


def _past_continuation(buf: bytes, pos: int) -> int:
    """The end of the continuation lines (a traceback) that follow position `pos`."""
    return _CONTINUATION.match(buf, pos).end()


@dataclass
class AppScanner:
    """Accumulates one app log's Summary from complete lines."""

    name: str
    summary: Summary
    line_base: int = 0  # lines before the current chunk, for key positions

    def feed(self, chunk: bytes) -> None:
        s = self.summary
        if b"sk-" in chunk:
            for m in KEY.finditer(chunk):
                if len(s.key_hits) < 100:
                    line = self.line_base + chunk.count(b"\n", 0, m.start()) + 1
                    s.key_hits.append(f"{self.name}:{line}")
        s.lines -= 1  # the newline put in front of the chunk
        self.line_base -= 1
        for prefix, run in _runs(b"\n" + chunk):
            newlines = run.count(b"\n")
            s.lines += newlines
            self.line_base += newlines
            leveled = [(lv, LEVELED[lv].findall(run)) for lv in LEVELS if lv + b" - " in run]
            tails = sum(tail.count(b"\n") for _, found in leveled for _, tail in found if tail)
            if prefix and run.count(prefix) + tails == newlines:
                hour = prefix[1:-1].decode()  # every line of the run is of this hour
                for level, found in leveled:
                    for (msg, tail), n in Counter(found).items():
                        self._leveled(hour, level, msg, tail, n)
                found = TRAFFIC.findall(run)
                self._responses(hour, list(filter(itemgetter(0), found)))
                requests = Counter(map(itemgetter(2, 3), filterfalse(itemgetter(0), found)))
                for (method, path), n in requests.items():
                    self._request(hour, method, path, n)
                continue
            for (h, level, msg, tail), n in Counter(LEVELED_HOURLY.findall(run)).items():
                self._leveled(h.decode(), level, msg, tail, n)
            for (h, status, secs, method, path), n in Counter(TRAFFIC_HOURLY.findall(run)).items():
                if status:
                    self._responses(h.decode(), [(status[:1], secs)] * n)
                else:
                    self._request(h.decode(), method, path, n)

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

    def _responses(self, hour: str, found: list[tuple[bytes, bytes]]) -> None:
        """Response lines of one hour: (first digit of the status, seconds) pairs, counted
        with C-level map/Counter; Python runs once per distinct status class and bucket."""
        if not found:
            return
        h = self.summary.hour(hour)
        h.requests += len(found)
        for digit, n in Counter(map(itemgetter(0), found)).items():
            h.status[digit.decode() + "xx"] += n
        secs = list(map(itemgetter(1), found))
        h.latency.n += len(secs)
        h.latency.total_ms += 1000.0 * sum(map(float, secs))
        h.latency.counts.update(Counter(map(_BUCKET.__getitem__, secs)))

    def _request(self, hour: str, method: bytes, path: bytes, n: int) -> None:
        h = self.summary.hour(hour)
        endpoint = f"{method.decode()} {path.decode('utf-8', 'replace')[:80]}"
        h.endpoints[endpoint] += n
        if endpoint == GENERATE:
            h.generations += n


class _Buckets(dict):
    """Seconds as logged (b"2.333") -> histogram bucket, computed once per distinct value."""

    def __missing__(self, secs: bytes) -> int:
        b = self[secs] = bucket(float(secs) * 1000.0)
        return b


_BUCKET = _Buckets()


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
