"""One streaming pass over a log file, in bytes, in large chunks.

The app log (`%(asctime)s - %(name)s - %(levelname)s - %(message)s`) is read 4 MiB
at a time into one reused buffer. Every line the checks need holds a capital R
("Request: ", "Response: ", ERROR, WARNING, CRITICAL), so numpy finds the newlines and
the R's in one vectorised pass, tells the R's apart by the bytes around them, and gives
each line the hour of its own timestamp: lines out of order and clock jumps land where
they belong. Response and Request lines (about 40 % of all) are counted per hour,
status, histogram bucket and endpoint in numpy; ERROR, WARNING and CRITICAL records
(about 1 %) get Python each, for their signature and traceback. A chunk ends before its
last timestamped line, so a record and its traceback are read together.

The nginx access log is read by one regex per line (`AccessScanner`). Undecodable
bytes stay bytes until a signature or an endpoint is made; a line longer than
`MAX_LINE` is cut and counted.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from opscheck.probes.logs import columns
from opscheck.probes.logs.columns import PAD, Words
from opscheck.probes.logs.summary import Summary
from opscheck.scrub import scrub

CHUNK = 4 << 20
NL = b"\n"
NEWLINE, CAPITAL_R, SMALL_K = ord("\n"), ord("R"), ord("k")
hour_key = functools.lru_cache(maxsize=1 << 14)(columns.hour_key)
MAX_LINE = 1 << 20  # a longer line is cut here (counted in Summary.overlong)

REQUEST = re.compile(rb"([A-Z]+) (/\S*)\s*")
FAILED_SECS = re.compile(rb"Request failed:.*?([\d.]+)s\s*$")
# "k-" is rarer than "sk-" (the engine scans for the first byte); the "s" is checked after
KEY = re.compile(rb"k-(?:ant-[A-Za-z0-9_\-]{8,}|(?:proj-)?[A-Za-z0-9]{20,})")
GENERATE = "POST /api/v1/templates/generate"

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b")
_ID = re.compile(r"\b[A-Za-z]+[_-](?=[A-Za-z0-9]*\d)[A-Za-z0-9]{6,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


# Every ASCII digit made "0": the signature does not change (each rule below treats
# all digits alike, and numbers become <n>), and messages that differ only in their
# numbers share one cache entry.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


def signature(message: bytes, tail: bytes = b"") -> str:
    """A message with its ids, numbers, quoted values and hex made generic, and the
    exception type of a traceback that followed it."""
    return _signature(message.translate(_DIGITS_AS_ZERO), exception_type(tail))


def exception_type(tail: bytes) -> str:
    """The exception type on a traceback's last line ("ValueError: ..."), or ""."""
    last = tail.strip().rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    exc = last.split(":", 1)[0].strip()
    return exc if exc and " " not in exc else ""


@functools.lru_cache(maxsize=1 << 16)
def _signature(message: bytes, exc: str) -> str:
    text = scrub(message.decode("utf-8", "replace").strip())
    if "'" in text or '"' in text:  # (each rule is skipped where it cannot match)
        text = _QUOTED.sub("'…'", text)
    digits = "0" in text or not text.isascii()  # ASCII digits are all 0 here; \d is wider
    if digits and "-" in text:
        text = _UUID.sub("<uuid>", text)
    if digits and ("-" in text or "_" in text):
        text = _ID.sub("<id>", text)
    text = _HEX.sub("<hex>", text) if digits else text
    text = _NUMBER.sub("<n>", text)[:300]
    return f"{text} [{exc}]" if exc else text


_CONTINUATION = re.compile(rb"(?:\n(?![12]\d{3}-)[^\n]+)*")  # lines with no timestamp
STAMPED = re.compile(rb"[12]\d{3}-")  # how a record's first line starts
# a level as it stands in a record, from the "R" every one of them holds
_LEVEL_AT_R = ((b"ERROR", 1), (b"WARNING", 2), (b"CRITICAL", 1))  # (level, index of its R)
_BEFORE_R = len(b"INFO - ")
_BUCKETS = 2048  # histogram buckets kept per hour: up to 1.01^2047 ms (8 days)
_OPEN_HOURS = 2048  # hours of Response counts kept in numpy before they go to the Summary


@dataclass
class _HourTraffic:
    status: np.ndarray = field(default_factory=lambda: np.zeros(10, np.int64))
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(_BUCKETS, np.int64))
    total_ms: float = 0.0


@dataclass
class AppScanner:
    """Accumulates one app log's Summary from buffers of complete lines.

    Every line this scanner cares about holds a capital R: "Request: ", "Response: ",
    and each of ERROR, WARNING and CRITICAL. One vectorised pass finds the R bytes and
    the newlines; the few thousand R's per MiB are told apart by the bytes around them,
    each line's own timestamp gives its hour, and Response and Request lines are
    counted per (hour, status, histogram bucket) and (hour, endpoint) with numpy. The
    ERROR, WARNING and CRITICAL records (about 1 % of lines) get Python each, for
    their signature and traceback.
    """

    name: str
    summary: Summary
    line_base: int = 0  # lines before the current buffer, for key positions

    def __post_init__(self) -> None:
        self._hours: dict[int, _HourTraffic] = {}  # Response counts by hour, in numpy
        self._masks = (np.empty(0, bool), np.empty(0, bool))

    def feed(self, buf: bytearray, stop: int) -> None:
        """Read buf[:stop]: a newline, then whole lines separated by newlines; buf[stop]
        is a newline and at least `PAD` bytes follow it."""
        s = self.summary
        a = np.frombuffer(buf, np.uint8, stop + 1)
        words = Words(buf)
        if len(self._masks[0]) < len(a):
            self._masks = (np.empty(len(buf), bool), np.empty(len(buf), bool))
        m1, m2 = (m[: len(a)] for m in self._masks)  # reused: no page faults per chunk
        np.logical_or(np.equal(a, NEWLINE, out=m1), np.equal(a, CAPITAL_R, out=m2), out=m1)
        marks = np.flatnonzero(np.logical_or(m1, np.equal(a, SMALL_K, out=m2), out=m1))
        byte = a[marks]
        nl = marks[byte == NEWLINE]
        self._keys(buf, words, marks[byte == SMALL_K], stop)
        r = marks[byte == CAPITAL_R]
        r = r[np.searchsorted(r, _BEFORE_R + 1) :]
        info = words.starts_with(r, b"INFO - R", -_BEFORE_R)
        other, r = r[~info], r[info]
        after = a[r + 2]
        resp, req = r[after == ord("s")], r[after == ord("q")]
        resp = resp[words.starts_with(resp, b"esponse: ", 1)]
        req = req[words.starts_with(req, b"equest: ", 1)]
        # for each position, the index in nl of the newline that ends its line
        self._responses(words, a, resp + len(b"Response: "), nl, np.searchsorted(nl, resp))
        self._requests(buf, words, req + len(b"Request: "), nl, np.searchsorted(nl, req))
        self._records(buf, a, words, other, nl, stop)
        s.lines += len(nl) - 1
        self.line_base += len(nl) - 1

    def _keys(self, buf: bytearray, words: Words, k: np.ndarray, stop: int) -> None:
        """API-key-shaped strings ("sk-ant-...") by file and line, never the value."""
        s = self.summary
        k = k[k > 0]
        k = k[words.starts_with(k - 1, b"sk-")]
        for p in k.tolist():
            if KEY.match(buf, p, stop) and len(s.key_hits) < 100:
                s.key_hits.append(f"{self.name}:{self.line_base + buf.count(NL, 0, p)}")

    def _responses(self, words: Words, a, pos, nl, line) -> None:
        """Response lines: "200 - 2.333s" from `pos` to the end of the line."""
        end = nl[line]
        end -= a[end - 1] == ord("\r")  # a line ended CR LF
        status = words.bytes_at(pos, 0, 3) - np.uint8(ord("0"))  # a non-digit wraps past 9
        ok = (status[0] <= 9) & (status[1] <= 9) & (status[2] <= 9) & (a[end - 1] == ord("s"))
        ok &= words.starts_with(pos, b" - ", 3)
        start = len(b"200 - ")
        secs = words.decimals(pos + start, end - 1 - pos - start)
        codes, inverse = words.hour_groups(nl[line - 1] + 1)
        ok &= ~np.isnan(secs) & (codes[inverse] >= 0)
        inverse, status, ms = inverse[ok], status[0, ok].astype(np.int64), secs[ok] * 1000.0
        k = len(codes)
        per_status = np.bincount(inverse * 10 + status, minlength=k * 10).reshape(k, 10)
        bucket = np.minimum(columns.buckets(ms), _BUCKETS - 1)
        per_bucket = np.bincount(inverse * _BUCKETS + bucket, minlength=k * _BUCKETS)
        per_bucket = per_bucket.reshape(k, _BUCKETS)
        totals = np.bincount(inverse, ms, minlength=k)
        for i, code in enumerate(codes.tolist()):
            if code < 0 or not per_status[i].any():
                continue
            acc = self._hours.setdefault(code, _HourTraffic())
            acc.status += per_status[i]
            acc.buckets += per_bucket[i]
            acc.total_ms += float(totals[i])
        if len(self._hours) > _OPEN_HOURS:
            self.close()

    def close(self) -> None:
        """Move the Response counts kept in numpy into the Summary."""
        for code, acc in self._hours.items():
            h = self.summary.hour(hour_key(code))
            for digit in np.flatnonzero(acc.status).tolist():
                h.status[f"{digit}xx"] += int(acc.status[digit])
            h.requests += int(acc.status.sum())
            filled = np.flatnonzero(acc.buckets)
            h.latency.counts.update(
                dict(zip(filled.tolist(), acc.buckets[filled].tolist(), strict=True))
            )
            h.latency.n += int(acc.buckets.sum())
            h.latency.total_ms += acc.total_ms
        self._hours.clear()

    def _requests(self, buf: bytearray, words: Words, pos, nl, line) -> None:
        """Request lines: "POST /api/v1/templates/generate" from `pos` to the line end,
        counted per (hour, value) by a 64-bit hash of the value."""
        codes, group = words.hour_groups(nl[line - 1] + 1)
        length = nl[line] - pos
        fits = length <= columns.TEXT_WIDTH
        rows = zip(pos[~fits].tolist(), length[~fits].tolist(), group[~fits].tolist(), strict=True)
        for p, n, g in rows:
            self._endpoint(int(codes[g]), bytes(buf[p : p + n]), 1)
        pos, length, group = pos[fits], length[fits], group[fits]
        digest = words.text_hash(pos, length)
        _, first, which = np.unique(digest, return_index=True, return_inverse=True)
        pairs, counts = np.unique(group * len(first) + which, return_counts=True)
        for pair, n in zip(pairs.tolist(), counts.tolist(), strict=True):
            g, i = divmod(pair, len(first))
            p = int(pos[first[i]])
            self._endpoint(int(codes[g]), bytes(buf[p : p + int(length[first[i]])]), n)

    def _endpoint(self, code: int, value: bytes, n: int) -> None:
        m = REQUEST.fullmatch(value)
        if code < 0 or m is None:
            return
        h = self.summary.hour(hour_key(code))
        endpoint = f"{m.group(1).decode()} {m.group(2).decode('utf-8', 'replace')[:80]}"
        h.endpoints[endpoint] += n
        h.generations += n if endpoint == GENERATE else 0

    def _records(self, buf: bytearray, a, words: Words, r, nl, stop: int) -> None:
        """Count the ERROR, CRITICAL and WARNING records under the hour of their line.

        A record's level is the second " - " field after the line's timestamp (the
        same word inside a message is not); lines that follow it without a timestamp
        (a traceback) are its tail."""
        seen: Counter = Counter()
        before = a[r - 1]
        for level, offset in _LEVEL_AT_R:
            cand = r[before == level[offset - 1]]  # "ER" of ERROR, "AR" of WARNING ...
            cand = cand[words.starts_with(cand, b" - " + level + b" - ", -offset - 3)]
            at, ln = cand - offset, np.searchsorted(nl, cand)
            start, end = nl[ln - 1] + 1, nl[ln]
            hour = words.hours(start)
            nxt = words.bytes_at(end + 1, 0, 5)
            stamped = ((nxt[0] == ord("1")) | (nxt[0] == ord("2"))) & (nxt[4] == ord("-"))
            stamped &= ((nxt[1:4] - np.uint8(ord("0"))) <= 9).all(axis=0)
            tailed = ~stamped & (end < stop)
            cols = (at, start, end, hour, tailed)
            rows = zip(*(c.tolist() for c in cols), strict=True)
            for p, first, last, code, has_tail in rows:
                if code < 0 or buf.count(b" - ", first, p) != 2:
                    continue
                msg, exc = bytes(buf[p + len(level) + 3 : last]), ""
                if has_tail:
                    tail_end = _CONTINUATION.match(buf, last, stop).end()
                    self.summary.continuation += buf.count(NL, last, tail_end)
                    exc = exception_type(bytes(buf[last:tail_end]))
                if level == b"WARNING":
                    exc = ""  # a warning's signature is its message alone
                elif msg.startswith(b"Request failed:"):
                    self._failed(code, msg)
                seen[(code, level, msg.translate(_DIGITS_AS_ZERO), exc)] += 1
        s = self.summary
        for (code, level, msg, exc), n in seen.items():
            s.levels[level.decode()] += n
            h = s.hour(hour_key(code))
            (h.warnings if level == b"WARNING" else h.errors)[_signature(msg, exc)] += n

    def _failed(self, code: int, msg: bytes) -> None:
        """A request that raised: answered 500 by the exception handler, with no
        Response line; its "Request failed: ... - 0.004s" counts as that response."""
        if failed := FAILED_SECS.search(msg):
            h = self.summary.hour(hour_key(code))
            h.requests += 1
            h.status["5xx"] += 1
            h.latency.add(float(failed.group(1)) * 1000.0)


def complete_lines(
    f: BinaryIO, end: int | None, summary: Summary, whole_records: bool = False
) -> Iterator[tuple[bytearray, int]]:
    """(buffer, stop) pairs from `f` up to byte `end` (None: to EOF): buffer[0] is a
    newline, buffer[:stop] holds whole lines each after a newline, buffer[stop] is the
    newline that ends the last, and at least `PAD` bytes follow. A final line without a
    newline is yielded too (a closed file's last line is complete). With
    `whole_records`, a buffer ends before the last timestamped line it holds, so that a
    record and the lines that continue it (a traceback) are read together. The same
    buffer is read into each time (no allocation per chunk): valid until the next."""
    buf = bytearray(1 + MAX_LINE + CHUNK + PAD)
    view = memoryview(buf)
    buf[0] = NEWLINE
    have, skipping, read = 1, False, 0  # have: the bytes kept from the last chunk
    while True:
        want = CHUNK if end is None else min(CHUNK, end - read)
        got = f.readinto(view[have : have + want]) if want > 0 else 0
        read += got or 0
        if not got:
            if buf[have - 1] == NEWLINE:  # the carried lines end with their newline
                have -= 1
            if have > 0 and not skipping:
                buf[have] = NEWLINE
                yield buf, have
            return
        total = have + got
        if skipping:  # inside an overlong line: drop up to its end
            nl = buf.find(NL, have, total)
            if nl < 0:
                continue
            buf[: total - nl] = buf[nl:total]
            total, skipping = total - nl, False
        stop = buf.rfind(NL, 0, total)
        if whole_records and stop > 0:
            stop = record_start(buf, stop) or stop
        if stop > 0:
            yield buf, stop
            buf[: total - stop] = buf[stop:total]
            have = total - stop
        else:
            have = total
        if have > MAX_LINE:
            summary.overlong += 1
            have, skipping = 1, True


def record_start(buf: bytes | bytearray, stop: int) -> int:
    """The newline before the last timestamped line that starts before `stop` (a
    record's first line), looking back at most `MAX_LINE` bytes; 0 if there is none."""
    pos, floor = stop, max(0, stop - MAX_LINE)
    while pos > floor:
        pos = buf.rfind(NL, floor, pos)
        if pos < 0:
            return 0
        if STAMPED.match(buf, pos + 1):
            return pos
    return 0


def scan_app(f: BinaryIO, name: str, end: int | None = None, line_base: int = 0) -> Summary:
    """One pass over an app log stream; returns its Summary."""
    summary = Summary(latency_source="app log (server side)")
    scanner = AppScanner(name, summary, line_base)
    for buf, stop in complete_lines(f, end, summary, whole_records=True):
        scanner.feed(buf, stop)
    scanner.close()
    return summary
