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

The nginx access log is read by `access.py` (its `log_format` compiled to a parser).
Undecodable bytes stay bytes until a signature or an endpoint is made; a line longer
than `MAX_LINE` is cut and counted.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO
from zoneinfo import ZoneInfo

import numpy as np

from opscheck.probes.logs import columns
from opscheck.probes.logs.columns import PAD, Words
from opscheck.probes.logs.summary import Summary
from opscheck.scrub import scrub

CHUNK = 4 << 20
NL = b"\n"
NEWLINE, CAPITAL_R, SMALL_K = ord("\n"), ord("R"), ord("k")
MAX_LINE = 1 << 20  # a longer line is cut here (counted in Summary.overlong)

REQUEST = re.compile(rb"([A-Z]+) (/\S*)\s*")
FAILED_SECS = re.compile(rb"- ([\d.]+)s\s*$")  # on a "Request failed" record's last line
# httpx's line for every LLM and embeddings call: its target and its answer's status
HTTPX_CALL = re.compile(rb'[A-Z]+ (?:https?://)?([^\s?"]+)\S* "HTTP/[\d.]+ (\d{3})')


@functools.lru_cache(maxsize=1 << 14)
def utc_hour(code: int, tz: str) -> str:
    """The UTC hour key of a local YYYYmmddHH `code` in zone `tz` ("": this machine's
    zone), or "" for a code that is no real hour. A wall-clock hour that a DST fall-back
    repeats is taken as its first occurrence (the log line gives no offset)."""
    s = f"{code:010d}"
    try:
        local = datetime(int(s[:4]), int(s[4:6]), int(s[6:8]), int(s[8:]))
    except ValueError:
        return ""
    aware = local.replace(tzinfo=ZoneInfo(tz)) if tz else local.astimezone()
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H")


def utc_stamp(local: str, tz: str) -> str:
    """A local "YYYY-mm-dd HH:MM:SS" of zone `tz` as UTC, same shape ("" if invalid)."""
    try:
        naive = datetime.strptime(local, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return ""
    aware = naive.replace(tzinfo=ZoneInfo(tz)) if tz else naive.astimezone()
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


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
# numbers share one cache entry. HTTP status codes are the exception: kept as written.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_STATUS_AT = re.compile(rb"(?:[Cc]ode|[Ss]tatus|HTTP/\d\.\d|HTTP Exception)[:=]? ?[1-5]\d\d\b")
# What tells one failure from another survives normalising: a status code ("Error
# code: 401") and an API's error type name ('authentication_error' vs 'api_error').
_KEEP = re.compile(
    r"(?:[Cc]ode|[Ss]tatus|HTTP/\d\.\d|HTTP Exception)[:=]? ?[1-5]\d\d\b"
    r"|'[a-z]+(?:_[a-z]+)*_error'|\"[a-z]+(?:_[a-z]+)*_error\""
)


def signature(message: bytes, tail: bytes = b"") -> str:
    """A message with its ids, numbers, quoted values and hex made generic (status codes
    and error type names kept), and the exception type of a traceback that followed it."""
    return _signature(zeroed(message), exception_type(tail))


@functools.lru_cache(maxsize=1 << 14)
def zeroed(message: bytes) -> bytes:
    """`message` with every ASCII digit made 0, but those of HTTP status codes."""
    if not _STATUS_AT.search(message):
        return message.translate(_DIGITS_AS_ZERO)
    out, at = [], 0
    for m in _STATUS_AT.finditer(message):
        out += [message[at : m.start()].translate(_DIGITS_AS_ZERO), m.group()]
        at = m.end()
    out.append(message[at:].translate(_DIGITS_AS_ZERO))
    return b"".join(out)


def exception_type(tail: bytes) -> str:
    """The exception type on a traceback's last line ("ValueError: ..."), or ""."""
    last = tail.strip().rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    exc = last.split(":", 1)[0].strip()
    return exc if exc and " " not in exc else ""


@functools.lru_cache(maxsize=1 << 16)
def _signature(message: bytes, exc: str) -> str:
    text = scrub(message.decode("utf-8", "replace").strip())
    parts, at = [], 0
    for m in _KEEP.finditer(text):
        parts += [_generic(text[at : m.start()]), m.group()]
        at = m.end()
    text = ("".join(parts) + _generic(text[at:]))[:300]
    return f"{text} [{exc}]" if exc else text


def _generic(text: str) -> str:
    """Ids, numbers, quoted values and hex made generic."""
    if "'" in text or '"' in text:  # (each rule is skipped where it cannot match)
        text = _QUOTED.sub("'…'", text)
    digits = "0" in text or not text.isascii()  # ASCII digits are all 0 here; \d is wider
    if digits and "-" in text:
        text = _UUID.sub("<uuid>", text)
    if digits and ("-" in text or "_" in text):
        text = _ID.sub("<id>", text)
    text = _HEX.sub("<hex>", text) if digits else text
    return _NUMBER.sub("<n>", text)


_CONTINUATION = re.compile(rb"(?:\n(?![12]\d{3}-)[^\n]+)*")  # lines with no timestamp
STAMPED = re.compile(rb"[12]\d{3}-")  # how a record's first line starts
# a level as it stands in a record, from the "R" every one of them holds
_LEVEL_AT_R = ((b"ERROR", 1), (b"WARNING", 2), (b"CRITICAL", 1))  # (level, index of its R)
_BEFORE_R = len(b"INFO - ")
_HTTPX = b"INFO - HTTP Request: "  # httpx's line for each call it makes
_BEFORE_HTTPX = len(b"INFO - HTTP ")
_BUCKETS = 2048  # histogram buckets kept per hour: up to 1.01^2047 ms (8 days)
_OPEN_HOURS = 2048  # hours of Response counts kept in numpy before they go to the Summary


@dataclass
class _HourTraffic:
    codes: np.ndarray = field(default_factory=lambda: np.zeros(1000, np.int64))
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(_BUCKETS, np.int64))
    total_ms: float = 0.0


def _byte_mask(positions: tuple[int, ...], value: int) -> np.uint64:
    return np.uint64(sum(value << (8 * i) for i in positions))


_DIGITS_AT = (0, 1, 2, 3, 5, 6)  # of "YYYY-mm-", the start of every record's first line
_HIGH, _HIGH_3 = _byte_mask(_DIGITS_AT, 0xF0), _byte_mask(_DIGITS_AT, 0x30)
_LOW, _SIX = _byte_mask(_DIGITS_AT, 0x0F), _byte_mask(_DIGITS_AT, 0x06)
_DASHES, _DASHES_AT = _byte_mask((4, 7), 0xFF), _byte_mask((4, 7), ord("-"))
_AFTER_STAMP = _byte_mask((0, 4, 5, 6), 0xFF)  # ",123 - " after "2026-11-25 14:03:07"
_AFTER_STAMP_IS = np.uint64(int.from_bytes(b",\0\0\0 - ", "little"))
_STAMP_LEN = len("2026-11-25 14:03:07")
_CONTROL_OK = np.array([b in (9, 10, 13) or 32 <= b < 127 or b >= 128 for b in range(256)])


def stamped(words: Words, starts: np.ndarray) -> np.ndarray:
    """Whether each line starts like a record ("YYYY-mm-" with a year from 1000 to 2999)."""
    w = words.at(starts)
    ok = (w & _HIGH) == _HIGH_3
    ok &= (((w & _LOW) + _SIX) & _HIGH) == 0  # every low nibble <= 9 (no carry past 0x15)
    ok &= (w & _DASHES) == _DASHES_AT
    first = w & np.uint64(0xFF)
    return ok & ((first == ord("1")) | (first == ord("2")))


@dataclass
class AppScanner:
    """Accumulates one app log's Summary from buffers of complete lines.

    Every line this scanner cares about holds a capital R: "Request: ", "Response: ",
    httpx's "HTTP Request: ", and each of ERROR, WARNING and CRITICAL. One vectorised
    pass finds the R bytes and the newlines; the few thousand R's per MiB are told apart
    by the bytes around them, each line's own timestamp gives its hour (local time in
    zone `tz`, filed under its UTC hour), and Response, Request and httpx lines are
    counted per (hour, status, histogram bucket) and (hour, value) with numpy. The
    ERROR, WARNING and CRITICAL records (about 1 % of lines) get Python each, for
    their signature and traceback. Lines that start like a record but are not one, and
    lines of binary junk, are counted as unparsed.
    """

    name: str
    summary: Summary
    line_base: int = 0  # lines before the current buffer, for key positions
    tz: str = ""  # the zone of the log's wall-clock stamps; "" = this machine's

    def __post_init__(self) -> None:
        self._hours: dict[int, _HourTraffic] = {}  # Response counts by hour, in numpy
        self._masks = (np.empty(0, bool), np.empty(0, bool))
        self._latest_code = -1  # the latest hour a counted line had
        self._latest_line = b""  # the stamp of the last record line seen

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
        self._lines(buf, words, nl)
        self._keys(buf, words, marks[byte == SMALL_K], stop)
        r = marks[byte == CAPITAL_R]
        r = r[np.searchsorted(r, _BEFORE_R + 1) :]
        info = words.starts_with(r, b"INFO - R", -_BEFORE_R)
        other, r = r[~info], r[info]
        after = a[r + 2]
        resp, req = r[after == ord("s")], r[after == ord("q")]
        resp = resp[words.starts_with(resp, b"esponse: ", 1)]
        req = req[words.starts_with(req, b"equest: ", 1)]
        calls = other[words.starts_with(other, _HTTPX, -_BEFORE_HTTPX)]
        # for each position, the index in nl of the newline that ends its line
        self._responses(words, a, resp + len(b"Response: "), nl, np.searchsorted(nl, resp))
        self._values(
            buf, words, req + len(b"Request: "), nl, np.searchsorted(nl, req), self._endpoint
        )
        self._values(
            buf, words, calls + len(b"Request: "), nl, np.searchsorted(nl, calls), self._call
        )
        self._records(buf, a, words, other, nl, stop)
        s.lines += len(nl) - 1
        self.line_base += len(nl) - 1

    def _lines(self, buf: bytearray, words: Words, nl: np.ndarray) -> None:
        """Records (lines with a stamp), and the lines that are neither a record nor text
        that may continue one (a bad stamp, binary junk in the first 8 bytes)."""
        s = self.summary
        starts = nl[:-1] + 1
        first = stamped(words, starts)
        record = starts[first]
        well_formed = (words.at(record, _STAMP_LEN) & _AFTER_STAMP) == _AFTER_STAMP_IS
        rest = starts[~first]
        junk = ~_CONTROL_OK[words.bytes_at(rest, 0, 8)].all(axis=0) if len(rest) else rest
        s.records += int(well_formed.sum())
        bad = np.concatenate([record[~well_formed], rest[junk.astype(bool)]])
        s.unparsed += len(bad)
        if len(bad) and not s.unparsed_sample:
            at = int(bad.min())
            line = bytes(buf[at : min(buf.find(NL, at), at + 200)])
            s.unparsed_sample = scrub(line.decode("utf-8", "replace"))
        if len(record):
            last = int(record[well_formed][-1]) if well_formed.any() else -1
            if last >= 0:
                self._latest_line = max(self._latest_line, bytes(buf[last : last + _STAMP_LEN]))

    def _keys(self, buf: bytearray, words: Words, k: np.ndarray, stop: int) -> None:
        """API-key-shaped strings ("sk-ant-...") by file and line, never the value."""
        s = self.summary
        k = k[k > 0]
        k = k[words.starts_with(k - 1, b"sk-")]
        for p in k.tolist():
            if KEY.match(buf, p, stop) and len(s.key_hits) < 100:
                s.key_hits.append(f"{self.name}:{self.line_base + buf.count(NL, 0, p)}")

    def _hour(self, code: int) -> str:
        """The UTC hour key of a local hour code ("" for none), noting the latest."""
        self._latest_code = max(self._latest_code, code)
        return utc_hour(code, self.tz)

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
        inverse, ms = inverse[ok], secs[ok] * 1000.0
        status = status[:, ok].astype(np.int64)
        code3 = status[0] * 100 + status[1] * 10 + status[2]
        k = len(codes)
        per_code = np.bincount(inverse * 1000 + code3, minlength=k * 1000).reshape(k, 1000)
        bucket = np.minimum(columns.buckets(ms), _BUCKETS - 1)
        per_bucket = np.bincount(inverse * _BUCKETS + bucket, minlength=k * _BUCKETS)
        per_bucket = per_bucket.reshape(k, _BUCKETS)
        totals = np.bincount(inverse, ms, minlength=k)
        for i, code in enumerate(codes.tolist()):
            if code < 0 or not per_code[i].any():
                continue
            acc = self._hours.setdefault(code, _HourTraffic())
            acc.codes += per_code[i]
            acc.buckets += per_bucket[i]
            acc.total_ms += float(totals[i])
        if len(self._hours) > _OPEN_HOURS:
            self.close()

    def close(self) -> None:
        """Move the Response counts kept in numpy into the Summary, and the latest stamp."""
        s = self.summary
        for code, acc in self._hours.items():
            key = self._hour(code)
            if not key:  # digits where a stamp should be, but no real hour
                s.unparsed += int(acc.codes.sum())
                continue
            h = s.hour(key)
            for c in np.flatnonzero(acc.codes).tolist():
                n = int(acc.codes[c])
                h.status[f"{c // 100}xx"] += n
                h.codes[f"{c:03d}"] += n
            h.requests += int(acc.codes.sum())
            filled = np.flatnonzero(acc.buckets)
            h.latency.counts.update(
                dict(zip(filled.tolist(), acc.buckets[filled].tolist(), strict=True))
            )
            h.latency.n += int(acc.buckets.sum())
            h.latency.total_ms += acc.total_ms
        self._hours.clear()
        latest = self._latest_line.decode("ascii", "replace")
        if self._latest_code >= 0:
            c = f"{self._latest_code:010d}"
            latest = max(latest, f"{c[:4]}-{c[4:6]}-{c[6:8]} {c[8:]}:00:00")
        if latest:
            s.latest = max(s.latest, utc_stamp(latest, self.tz))

    def _values(self, buf: bytearray, words: Words, pos, nl, line, consume) -> None:
        """The text from each `pos` to its line's end, counted per (hour, value) by a
        64-bit hash of the value; `consume(hour code, value, count)` takes each."""
        codes, group = words.hour_groups(nl[line - 1] + 1)
        length = nl[line] - pos
        fits = length <= columns.TEXT_WIDTH
        rows = zip(pos[~fits].tolist(), length[~fits].tolist(), group[~fits].tolist(), strict=True)
        for p, n, g in rows:
            consume(int(codes[g]), bytes(buf[p : p + n]), 1)
        pos, length, group = pos[fits], length[fits], group[fits]
        digest = words.text_hash(pos, length)
        _, first, which = np.unique(digest, return_index=True, return_inverse=True)
        pairs, counts = np.unique(group * len(first) + which, return_counts=True)
        for pair, n in zip(pairs.tolist(), counts.tolist(), strict=True):
            g, i = divmod(pair, len(first))
            p = int(pos[first[i]])
            consume(int(codes[g]), bytes(buf[p : p + int(length[first[i]])]), n)

    def _endpoint(self, code: int, value: bytes, n: int) -> None:
        """A Request line's "POST /api/v1/templates/generate"."""
        m = REQUEST.fullmatch(value)
        key = self._hour(code) if code >= 0 else ""
        if not key or m is None:
            return
        h = self.summary.hour(key)
        endpoint = f"{m.group(1).decode()} {m.group(2).decode('utf-8', 'replace')[:80]}"
        h.endpoints[endpoint] += n
        h.generations += n if endpoint == GENERATE else 0

    def _call(self, code: int, value: bytes, n: int) -> None:
        """httpx's 'POST https://api.anthropic.com/v1/messages "HTTP/1.1 200 OK"'."""
        m = HTTPX_CALL.match(value)
        key = self._hour(code) if code >= 0 else ""
        if not key or m is None:
            return
        target = m.group(1).decode("utf-8", "replace")[:100]
        self.summary.hour(key).calls[f"{target} {m.group(2).decode()}"] += n

    def _records(self, buf: bytearray, a, words: Words, r, nl, stop: int) -> None:
        """Count the ERROR, CRITICAL and WARNING records under the hour of their line.

        A record's level is the second " - " field after the line's timestamp (the
        same word inside a message is not); lines that follow it without a timestamp
        (a traceback, a multi-line message) are its tail."""
        seen: Counter = Counter()
        before = a[r - 1]
        for level, offset in _LEVEL_AT_R:
            cand = r[before == level[offset - 1]]  # "ER" of ERROR, "AR" of WARNING ...
            cand = cand[words.starts_with(cand, b" - " + level + b" - ", -offset - 3)]
            at, ln = cand - offset, np.searchsorted(nl, cand)
            start, end = nl[ln - 1] + 1, nl[ln]
            hour = words.hours(start)
            nxt = words.bytes_at(end + 1, 0, 5)
            is_stamped = ((nxt[0] == ord("1")) | (nxt[0] == ord("2"))) & (nxt[4] == ord("-"))
            is_stamped &= ((nxt[1:4] - np.uint8(ord("0"))) <= 9).all(axis=0)
            tailed = ~is_stamped & (end < stop)
            cols = (at, start, end, hour, tailed)
            rows = zip(*(c.tolist() for c in cols), strict=True)
            for p, first, last, code, has_tail in rows:
                if code < 0 or buf.count(b" - ", first, p) != 2:
                    continue
                msg, exc, record_end = bytes(buf[p + len(level) + 3 : last]), "", last
                if has_tail:
                    record_end = _CONTINUATION.match(buf, last, stop).end()
                    self.summary.continuation += buf.count(NL, last, record_end)
                    exc = exception_type(bytes(buf[last:record_end]))
                if level == b"WARNING":
                    exc = ""  # a warning's signature is its message alone
                elif msg.startswith(b"Request failed:"):
                    ends = msg
                    if has_tail:  # the duration ends the record's last line
                        ends = bytes(buf[buf.rfind(NL, last, record_end) + 1 : record_end])
                    self._failed(code, ends if FAILED_SECS.search(ends) else msg)
                seen[(code, level, zeroed(msg), exc)] += 1
        s = self.summary
        for (code, level, msg, exc), n in seen.items():
            key = self._hour(code)
            if not key:
                s.unparsed += n
                continue
            s.levels[level.decode()] += n
            h = s.hour(key)
            (h.warnings if level == b"WARNING" else h.errors)[_signature(msg, exc)] += n

    def _failed(self, code: int, last_line: bytes) -> None:
        """A request that raised: answered 500 by the exception handler, with no
        Response line; its "Request failed: ... - 0.004s" counts as that response (the
        duration ends the record's last line when the exception's text spans lines)."""
        key = self._hour(code)
        if not key:
            return
        h = self.summary.hour(key)
        h.requests += 1
        h.status["5xx"] += 1
        h.codes["500"] += 1
        if failed := FAILED_SECS.search(last_line):
            h.latency.add(float(failed.group(1)) * 1000.0)
        else:
            self.summary.untimed += 1


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


def scan_app(
    f: BinaryIO, name: str, end: int | None = None, line_base: int = 0, tz: str = ""
) -> Summary:
    """One pass over an app log stream whose stamps are wall-clock times in `tz`."""
    summary = Summary(latency_source="app log (server side)")
    scanner = AppScanner(name, summary, line_base, tz)
    for buf, stop in complete_lines(f, end, summary, whole_records=True):
        scanner.feed(buf, stop)
    scanner.close()
    return summary
