"""The nginx access log: a `log_format` compiled to a parser, and one pass over a log.

Formats. `[paths] access_log_format` is a name or the format as nginx.conf writes it:
`combined` (nginx's default, no timing), `timed` (combined + ` $request_time`, the
default), `main` (combined + ` "$http_x_forwarded_for"`), `json` (`JSON` below, for
`log_format json escape=json '...'`), or the text of a `log_format` (its quoted
strings, or the whole directive, or the bare text), with `$name` / `${name}`
variables and the rest literal. A format that starts with `{` is read as nginx's
`escape=json` output. It must hold `$status`, a time (`$time_local`,
`$time_iso8601` or `$msec`), the request (`$request`, or `$request_uri` with an
optional `$request_method`) and a client (`$remote_addr` or
`$http_x_forwarded_for`); any other variable is read generically.

What is taken from a line:
- the time, with its own offset, as UTC: hours are UTC keys;
- the client: the first address of `$http_x_forwarded_for` when the format has it and
  it is neither "-" nor empty (behind a load balancer `$remote_addr` is the balancer),
  else `$remote_addr`. (That header is what the client says: a direct client can set
  it to anything);
- the duration: `$request_time` (client side) if the format has it, else
  `$upstream_response_time` (the sum of its values: "0.001, 0.002" is two upstreams
  tried one after the other, " : " an internal redirect; "-" parts count nothing,
  all "-" is no duration). A format with neither gives responses without a
  duration: `Summary.untimed` counts them and `latency_source` is "";
- the exact status (`Hour.codes`: 499 = the client gave up, 504 ...).

Reading. A 4 MiB buffer of whole lines is read with numpy: the positions of its
newlines and double quotes (nginx escapes a `"` inside a value, so quotes are where
the format puts them) place every variable of a line with the format's quotes
counted right; fixed-width values (times, status) are read in place, the others end
at the first byte of the literal that follows them. A line whose quotes or
literals do not fall where the format says (an escaped quote in a JSON value, an
odd line) is read alone by the format's regex (a JSON line by `json.loads` when the
regex fails), then by `combined` (a log written before the format changed). A line
that no way reads is counted in `Summary.unparsed`, and the first kept as a sample.

Rates and 401/403 bursts are counted over any 60 s (the first and the last request of
a window less than 60 s apart), per client, with the last two minutes of requests
carried from one buffer to the next; a peak is kept under the UTC hour of the
window's end, when it reaches `RATE_FLOOR` / `AUTH_FLOOR`. A range of a split file
first reads the `LEAD_IN` bytes before it for these windows only, so that a burst
across a cut is seen whole (at up to about 130 requests a second).

Probe paths are matched after %-decoding (repeated: `%252e` is `.` to a server that
decodes twice), `\\` as `/`, slash merging and dot-segment removal (`normalise`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import BinaryIO
from urllib.parse import unquote_to_bytes

import numpy as np

from opscheck.probes.logs import columns
from opscheck.probes.logs.columns import TEXT_WIDTH, Words
from opscheck.probes.logs.fields import FIXED, MONTHS, Bytes, Segment, digits, find, locate, times
from opscheck.probes.logs.scan import KEY, complete_lines
from opscheck.probes.logs.summary import Hist, Summary
from opscheck.scrub import scrub

COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
JSON = (
    '{"time":"$time_iso8601","remote_addr":"$remote_addr",'
    '"x_forwarded_for":"$http_x_forwarded_for","request":"$request","status":$status,'
    '"body_bytes_sent":$body_bytes_sent,"request_time":$request_time,'
    '"upstream_response_time":"$upstream_response_time",'
    '"http_referer":"$http_referer","http_user_agent":"$http_user_agent"}'
)
PRESETS = {
    "combined": COMBINED,
    "timed": COMBINED + " $request_time",
    "main": COMBINED + ' "$http_x_forwarded_for"',
    "json": JSON,
}
TIME_VARS = ("time_iso8601", "time_local", "msec")  # the first the format has is read
DURATION_VARS = ("request_time", "upstream_response_time")
SOURCES = {
    "request_time": "access log ($request_time, client side)",
    "upstream_response_time": "access log ($upstream_response_time, upstream side)",
}
NUMBERS = frozenset(
    [
        "request_time",
        "msec",
        "body_bytes_sent",
        "bytes_sent",
        "request_length",
        "connection",
        "connection_requests",
        "pid",
        "remote_port",
        "server_port",
    ]
)
TOKENS = frozenset(
    [
        "remote_addr",
        "remote_user",
        "realip_remote_addr",
        "request_method",
        "request_uri",
        "uri",
        "document_uri",
        "args",
        "query_string",
        "host",
        "hostname",
        "scheme",
        "server_name",
        "server_addr",
        "server_protocol",
        "request_id",
        "ssl_protocol",
        "ssl_cipher",
    ]
)
GENERATE = "POST /api/v1/templates/generate"
PROBE_PATH = re.compile(
    r"^/(?:\.env|\.git|\.aws|\.ssh|\.DS_Store|wp-admin|wp-login|xmlrpc\.php|phpmyadmin|pma|"
    r"admin\.php|config\.php|server-status|actuator|vendor/phpunit|cgi-bin)",
    re.I,
)
RATE_FLOOR = 20  # peaks below this are not kept (the limit is 100 a minute)
AUTH_FLOOR = 5
WINDOW_MS = 60_000
CARRY_MS = 2 * WINDOW_MS  # requests kept for the next buffer's windows (lines a bit out of order)
LEAD_IN = 1 << 20
_BUCKETS = 2048  # histogram buckets per (hour, endpoint): up to 1.01^2047 ms
_OPEN = 512  # (hour, endpoint) histograms kept in numpy before they go to the Summary
_CACHE_MAX = 100_000
NL = b"\n"
_MIX = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit constant, to mix two hashes


class FormatError(ValueError):
    """A `log_format` that cannot be read; the text is one line."""


# ---------------------------------------------------------------- the format, compiled


@dataclass(frozen=True)
class LogFormat:
    text: str  # the format's text, presets and nginx quoting resolved
    escape: str  # "default" or "json" (how nginx escapes values: `\xHH` or JSON)
    pieces: tuple[tuple[str, str], ...]  # ("lit", text) and ("var", name), in order
    time_var: str
    duration_var: str  # "" when the format has no timing
    request_var: str  # "request" or "request_uri"
    regex: re.Pattern[bytes]  # one whole line (fallback), named groups for what is read
    plan: tuple[Segment, ...] | None  # how numpy places the variables; None: regex only
    quotes: int  # double quotes in the format's literals

    @property
    def names(self) -> frozenset[str]:
        return frozenset(v for kind, v in self.pieces if kind == "var")

    @property
    def latency_source(self) -> str:
        return SOURCES.get(self.duration_var, "")

    @property
    def wanted(self) -> tuple[str, ...]:
        """The variables read from each line."""
        return _wanted(self.names, self.time_var, self.request_var, self.duration_var)


def _wanted(names, time_var: str, request_var: str, duration_var: str) -> tuple[str, ...]:
    want = [time_var, "status", request_var, duration_var]
    want += ["request_method", "remote_addr", "http_x_forwarded_for"]
    return tuple(v for v in dict.fromkeys(want) if v and v in names)


def format_id(spec: str) -> str:
    """A short stable name of a format, for cache keys."""
    return hashlib.sha256(compile_format(spec).text.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=64)
def compile_format(spec: str) -> LogFormat:
    """A name (`combined`, `timed`, `main`, `json`) or nginx `log_format` text, compiled;
    FormatError says in one line what is wrong with it."""
    text, escape = _format_text(spec)
    pieces = _pieces(text)
    names = {v for kind, v in pieces if kind == "var"}
    if "status" not in names:
        raise FormatError("the format has no $status")
    time_var = next((v for v in TIME_VARS if v in names), "")
    if not time_var:
        raise FormatError("the format has no time ($time_local, $time_iso8601 or $msec)")
    request_var = next((v for v in ("request", "request_uri") if v in names), "")
    if not request_var:
        raise FormatError("the format has no $request (or $request_uri)")
    if not names & {"remote_addr", "http_x_forwarded_for"}:
        raise FormatError("the format has no client ($remote_addr or $http_x_forwarded_for)")
    duration_var = next((v for v in DURATION_VARS if v in names), "")
    wanted = _wanted(names, time_var, request_var, duration_var)
    plan, quotes = _plan(pieces, set(wanted))
    regex = _regex(pieces, escape, wanted)
    return LogFormat(text, escape, pieces, time_var, duration_var, request_var,
                     regex, plan, quotes)  # fmt: skip


def _format_text(spec: str) -> tuple[str, str]:
    """(format text, escape mode) of a name, a `log_format` directive, its quoted
    strings, or bare text."""
    text = spec.strip()
    if text in PRESETS:
        return PRESETS[text], "json" if text == "json" else "default"
    if not text:
        raise FormatError("the format is empty")
    escape = ""
    directive = re.match(r"log_format\s+[\w.-]+\s+", text)
    if directive:
        text = text[directive.end() :].rstrip().removesuffix(";").rstrip()
    mode = re.match(r"escape=(\w+)\s+", text)
    if mode:
        if mode.group(1) not in ("default", "json", "none"):
            raise FormatError(f"unknown escape={mode.group(1)} (default, json or none)")
        escape, text = mode.group(1), text[mode.end() :]
    if text[:1] in ("'", '"'):
        text = _unquote(text.rstrip().removesuffix(";"))
    if "$" not in text:
        raise FormatError(f"{spec.strip()[:40]!r} is not a format name ({', '.join(PRESETS)}) "
                          "and has no $variables")  # fmt: skip
    if not escape:
        escape = "json" if text.lstrip().startswith("{") else "default"
    return text, "json" if escape == "json" else "default"


def _unquote(text: str) -> str:
    """The quoted strings of nginx.conf syntax ('a' "b" ...), joined."""
    out, i = [], 0
    while i < len(text):
        quote = text[i]
        if quote.isspace():
            i += 1
            continue
        if quote not in ("'", '"'):
            raise FormatError(f"text outside quotes: {text[i : i + 20]!r}")
        j, piece = i + 1, []
        while j < len(text) and text[j] != quote:
            if text[j] == "\\" and j + 1 < len(text) and text[j + 1] in "\"'\\tnr":
                piece.append({"t": "\t", "n": "\n", "r": "\r"}.get(text[j + 1], text[j + 1]))
                j += 2
            else:
                piece.append(text[j])
                j += 1
        if j >= len(text):
            raise FormatError(f"unterminated quote in {text[i : i + 20]!r}")
        out.append("".join(piece))
        i = j + 1
    return "".join(out)


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _pieces(text: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    at = 0
    for m in _VARIABLE.finditer(text):
        if m.start() > at:
            out.append(("lit", text[at : m.start()]))
        out.append(("var", (m.group(1) or m.group(2)).lower()))
        at = m.end()
    if at < len(text):
        out.append(("lit", text[at:]))
    for kind, value in out:
        if kind == "lit" and "$" in value:
            raise FormatError(f"a $ without a variable name: {value[:20]!r}")
        if kind == "lit" and "\n" in value:
            raise FormatError("the format holds a newline (a log line is one line)")
    return tuple(out)


def _may_hold(name: str, char: int) -> bool:
    """Whether a value of variable `name` may contain the byte `char` (nginx escapes
    `"`, so no value holds one)."""
    if char == ord('"'):
        return False
    if name in NUMBERS:
        return chr(char) in "0123456789.-"
    if name in TOKENS:
        return char != ord(" ")
    return True


def _plan(pieces, wanted: set[str]) -> tuple[tuple[Segment, ...] | None, int]:
    """The format cut at its quotes into segments, each placed from the left and its
    fixed-width tail from the right (a value not read and followed by fixed widths
    only is not searched for); None when a value's end cannot be told."""
    segments: list[tuple[list[bytes], list[str]]] = [([b""], [])]
    for kind, value in pieces:
        if kind == "var":
            segments[-1][1].append(value)
            segments[-1][0].append(b"")
            continue
        parts = value.encode().split(b'"')
        segments[-1][0][-1] += parts[0]
        for part in parts[1:]:
            segments.append(([part], []))
    plan = []
    for lits, names in segments:
        split = len(names) - 1
        for i in range(len(names) - 1):
            sep, fixed_after = lits[i + 1], all(n in FIXED for n in names[i + 1 :])
            if names[i] in FIXED:
                continue
            if fixed_after and names[i] not in wanted:
                split = i
                break
            if sep and not _may_hold(names[i], sep[0]):
                continue
            if not fixed_after:  # the rest of the segment must be fixed-width values
                return None, len(segments) - 1
            split = i
            break
        plan.append(Segment(tuple(lits), tuple(names), max(split, 0)))
    return tuple(plan), len(segments) - 1


_VALUE = {
    "time_local": rb"\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}",
    "time_iso8601": rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d|Z)",
    "status": rb"\d{3}",
}


def _regex(pieces, escape: str, wanted: tuple[str, ...]) -> re.Pattern[bytes]:
    """A regex of one whole line: literals as they are, each variable as what it may
    hold (lazily, so that the literal after it decides where it ends)."""
    text = rb'(?:[^"\\\n]|\\.)*?' if escape == "json" else rb'[^"\n]*?'
    seen: set[str] = set()
    out = []
    for kind, value in pieces:
        if kind == "lit":
            out.append(re.escape(value.encode()))
            continue
        if value in _VALUE:
            body = _VALUE[value]
        elif value in NUMBERS:
            body = rb"[^\s\",}]*"
        elif value in TOKENS:
            body = rb'[^\s"]*?'
        else:
            body = text
        if value in wanted and value not in seen:
            seen.add(value)
            out.append(b"(?P<" + value.encode() + b">" + body + b")")
        else:
            out.append(b"(?:" + body + b")")
    return re.compile(b"".join(out))


# ---------------------------------------------------------------- values, one at a time

_LOCAL = re.compile(rb"(\d\d)/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_ISO = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:([+-])(\d\d):(\d\d)|Z)")


def time_ms(var: str, value: bytes) -> int | None:
    """Milliseconds since the epoch of a `$time_local`, `$time_iso8601` or `$msec`
    value, or None when it is not one."""
    try:
        if var == "msec":
            ok = re.fullmatch(rb"\d+\.\d+", value) and float(value) < 253402300800.0
            return round(float(value) * 1000.0) if ok else None
        m = (_LOCAL if var == "time_local" else _ISO).fullmatch(value)
        if m is None:
            return None
        g = [x.decode() if x is not None else None for x in m.groups()]
        if var == "time_local":
            day, mon, year, hh, mm, ss, sign, zh, zm = g
            month = MONTHS.get(mon)
        else:
            year, mon, day, hh, mm, ss, sign, zh, zm = g
            month = int(mon)
        if month is None or not 1970 <= int(year) <= 9999:
            return None
        offset = timedelta(hours=int(zh or 0), minutes=int(zm or 0)) * (-1 if sign == "-" else 1)
        when = datetime(int(year), month, int(day), int(hh), int(mm), int(ss),
                        tzinfo=timezone(offset))  # fmt: skip
        return int(when.timestamp()) * 1000
    except (ValueError, OverflowError):
        return None


def duration_ms(var: str, value: bytes) -> float | None:
    """A `$request_time` in ms, or an `$upstream_response_time` list summed; None
    when there is no duration ("-", empty)."""
    parts = re.split(rb"\s*[,:]\s*", value.strip()) if var == "upstream_response_time" else [value]
    total, any_number = 0.0, False
    for part in parts:
        if re.fullmatch(rb"\d+(?:\.\d*)?|\.\d+", part):
            total += float(part) * 1000.0
            any_number = True
    return total if any_number else None


def _unescape(text: bytes, escape: str) -> bytes:
    """A value as it was before nginx escaped it (`\\xHH`, or JSON's `\\"` ...)."""
    if b"\\" not in text:
        return text
    if escape == "json":
        try:
            return json.loads(b'"' + text + b'"').encode("utf-8", "surrogateescape")
        except ValueError:
            return text
    return re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text)


_SCHEME_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*")


def normalise(path: str) -> str:
    """A request path as a server may resolve it: %-decoded (until nothing changes, at
    most 4 times), `\\` as `/`, slashes merged, `.` and `..` segments removed (RFC 3986
    5.2.4, never above the root), scheme and host of an absolute URL dropped."""
    for _ in range(4):
        decoded = unquote_to_bytes(path).decode("utf-8", "replace")
        if decoded == path:
            break
        path = decoded
    path = _SCHEME_HOST.sub("", path.replace("\\", "/"))
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif seg == ".":
            if last:
                out.append("")
        elif seg or last:
            out.append(seg)
    return "/" + "/".join(out)


@dataclass(frozen=True)
class Endpoint:
    name: str  # "POST /api/v1/templates/generate" (the path as requested, query left out)
    path: str
    probe: bool  # a scanner's path (after `normalise`)


def endpoint(key: bytes, escape: str) -> Endpoint | None:
    """The endpoint of b"METHOD /path" (nginx-escaped as logged); None for a request
    line that holds no method and path (b"-", bytes of a TLS hello ...)."""
    method, sep, target = key.partition(b" ")
    if not sep or not method or not target:
        return None
    raw = _unescape(target.split(b"?", 1)[0], escape).decode("utf-8", "replace")
    name = f"{method.decode('ascii', 'replace')} {raw[:80]}"
    return Endpoint(name, raw[:80], bool(PROBE_PATH.match(normalise(raw))))


# ---------------------------------------------------------------- the scanner


@dataclass
class Batch:
    """Parsed lines: time, status, duration, and ids of endpoint key and client."""

    t_ms: np.ndarray
    status: np.ndarray
    ms: np.ndarray  # duration, NaN for none
    ep: np.ndarray  # ids in the scanner's endpoint `Keys`
    client: np.ndarray  # ids in its client `Keys`

    def __len__(self) -> int:
        return len(self.t_ms)

    @classmethod
    def join(cls, parts: list[Batch]) -> Batch:
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _BATCH_FIELDS))


_BATCH_FIELDS = ("t_ms", "status", "ms", "ep", "client")


class Keys:
    """Distinct texts (endpoint keys, clients) with ids that hold across buffers, found
    by a 64-bit hash of the bytes (numpy) or by the text itself (one line at a time).
    Past `_CACHE_MAX` texts it starts over, between buffers."""

    def __init__(self, describe=None) -> None:
        self.describe = describe  # text -> what is known about it (an Endpoint), or None
        self.texts: list[bytes] = []
        self.info: list = []
        self.by_text: dict[bytes, int] = {}
        self.hashes = np.zeros(0, np.uint64)  # sorted
        self.hash_ids = np.zeros(0, np.int64)

    def id(self, text: bytes) -> int:
        i = self.by_text.get(text)
        if i is None:
            i = self.by_text[text] = len(self.texts)
            self.texts.append(text)
            self.info.append(self.describe(text) if self.describe else None)
        return i

    def ids(self, digest: np.ndarray, read) -> np.ndarray:
        """The id of each hash; `read(i)` gives the text of the i-th, for new ones."""
        out = np.empty(len(digest), np.int64)
        hit = np.zeros(len(digest), bool)
        if len(self.hashes):
            at = np.minimum(np.searchsorted(self.hashes, digest), len(self.hashes) - 1)
            hit = self.hashes[at] == digest
            out[hit] = self.hash_ids[at[hit]]
        miss = np.flatnonzero(~hit)
        if len(miss):
            new, first, which = np.unique(digest[miss], return_index=True, return_inverse=True)
            ids = np.array([self.id(read(int(miss[f]))) for f in first.tolist()], np.int64)
            out[miss] = ids[which]
            hashes = np.concatenate([self.hashes, new])
            order = np.argsort(hashes, kind="stable")
            self.hashes, self.hash_ids = hashes[order], np.concatenate([self.hash_ids, ids])[order]
        return out

    def trim(self) -> None:
        if len(self.texts) > _CACHE_MAX:
            self.__init__(self.describe)


def _groups(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values, each element's index into them) of non-negative ints; by
    counting when their range is small, else by sorting."""
    if not len(x):
        return x, x
    lo, hi = int(x.min()), int(x.max())
    if hi - lo > 4 * len(x) + 65536:
        return np.unique(x, return_inverse=True)
    present = np.bincount(x - lo, minlength=hi - lo + 1) > 0
    return np.flatnonzero(present) + lo, (np.cumsum(present) - 1)[x - lo]


@functools.lru_cache(maxsize=1 << 15)
def hour_key(code: int) -> str:
    """Epoch hours -> UTC "YYYY-mm-dd HH"."""
    return datetime.fromtimestamp(code * 3600, UTC).strftime("%Y-%m-%d %H")


def _stamp(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


class Windows:
    """Per client, the most requests in any 60 s (first and last less than 60 s apart),
    kept as `peaks["<UTC hour of the window's end>|<client>"]` where it reaches `floor`.
    The last `CARRY_MS` of requests are kept for the next buffer's windows."""

    def __init__(self, floor: int, peaks: dict[str, int], clients: Keys):
        self.floor, self.peaks, self.clients = floor, peaks, clients
        self.t = np.zeros(0, np.int64)
        self.c = np.zeros(0, np.int64)  # index into self.names
        self.names: list[bytes] = []
        self.newest = -(1 << 62)

    def add(self, t_ms: np.ndarray, client: np.ndarray, record: bool = True) -> None:
        if not len(t_ms):
            return
        old = np.array([self.clients.id(n) for n in self.names], np.int64)
        t = np.concatenate([self.t, t_ms])
        cid = np.concatenate([old[self.c], client]) if len(self.c) else client
        self.newest = max(self.newest, int(t_ms.max()))
        if record:
            self._record(*self._hot(t, cid))
        keep = t > self.newest - CARRY_MS
        used, self.c = np.unique(cid[keep], return_inverse=True)
        self.t, self.names = t[keep], [self.clients.texts[i] for i in used.tolist()]

    def _hot(self, t: np.ndarray, cid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The requests of clients that may reach the floor: a window spans at most two
        clock minutes, so a client below it in every two of them never reaches it."""
        minute = t // WINDOW_MS
        low, span = int(minute.min()), int(minute.max() - minute.min()) + 2
        clients = int(cid.max()) + 1
        if clients * span > 1 << 22:
            return t, cid
        per = np.bincount(cid * span + (minute - low), minlength=clients * span)
        per = per.reshape(clients, span)
        hot = np.flatnonzero((per[:, :-1] + per[:, 1:]).max(axis=1) >= self.floor)
        if len(hot) == clients:
            return t, cid
        take = np.isin(cid, hot)
        return t[take], cid[take]

    def _record(self, t: np.ndarray, cid: np.ndarray) -> None:
        """Count the window ending at each request (the last of equal times holds the
        count of them all) and keep the peaks."""
        if not len(t):
            return
        tmin = int(t.min())
        big = int(t.max()) - tmin + 2 * WINDOW_MS
        if (int(cid.max()) + 1) * big < 1 << 62:
            key = np.sort(cid * big + (t - tmin + WINDOW_MS))
            count = np.arange(len(key)) + 1 - np.searchsorted(key, key - (WINDOW_MS - 1))
            cid, t = key // big, key % big + (tmin - WINDOW_MS)
        else:  # times too far apart for one key: sort by client, then time
            order = np.lexsort((t, cid))
            cid, t = cid[order], t[order]
            count = np.ones(len(t), np.int64)
            for i in range(1, len(t)):  # (only for absurd spans of time in one buffer)
                j = i - count[i - 1]
                while j < i and (cid[j] != cid[i] or t[j] <= t[i] - WINDOW_MS):
                    j += 1
                count[i] = i - j + 1
        hit = np.flatnonzero(count >= self.floor)
        if len(hit):
            self._peaks(t[hit] // 3_600_000, cid[hit], count[hit])

    def _peaks(self, hours: np.ndarray, cid: np.ndarray, count: np.ndarray) -> None:
        best: dict[tuple[int, int], int] = {}
        order = np.lexsort((count, cid, hours))
        h, c, n = hours[order], cid[order], count[order]
        last = np.append((h[1:] != h[:-1]) | (c[1:] != c[:-1]), True)
        for hh, cc, v in zip(h[last].tolist(), c[last].tolist(), n[last].tolist(), strict=True):
            best[(hh, cc)] = v
        for (hh, cc), v in best.items():
            who = self.clients.texts[cc].decode("ascii", "replace") or "-"
            name = f"{hour_key(hh)}|{who}"
            if v > self.peaks.get(name, 0):
                self.peaks[name] = v


@dataclass
class _Acc:
    counts: np.ndarray = field(default_factory=lambda: np.zeros(_BUCKETS, np.int64))
    total_ms: float = 0.0


@dataclass
class AccessScanner:
    """Accumulates one access log's Summary from buffers of complete lines."""

    name: str
    summary: Summary
    fmt: LogFormat
    line_base: int = 0
    vector: bool = True  # numpy first (tests turn it off to compare with one by one)

    def __post_init__(self) -> None:
        self.endpoints = Keys(lambda key: endpoint(key, self.fmt.escape))
        self.clients = Keys()
        self.rates = Windows(RATE_FLOOR, self.summary.clients_over_rate, self.clients)
        self.auth = Windows(AUTH_FLOOR, self.summary.auth_bursts, self.clients)
        self._latency: dict[tuple[int, str | None], _Acc] = {}
        self._latest = -(1 << 62)
        self._fallbacks = [self.fmt] + (
            [compile_format("combined")] if self.fmt.text != COMBINED else []
        )
        self._json_keys = _json_keys(self.fmt) if self.fmt.escape == "json" else {}

    # -- reading

    def feed(self, buf: bytearray, stop: int, count: bool = True) -> None:
        """Read buf[:stop]: a newline, then whole lines separated by newlines; buf[stop]
        is a newline and at least `PAD` bytes follow it. Without `count`, the lines only
        feed the 60 s windows (the lines before a range of a split file)."""
        self.endpoints.trim()
        self.clients.trim()
        batch, lines = self._lines(Bytes(buf), buf, stop, count)
        if count:
            self._count(batch, buf, stop, lines)
        self.rates.add(batch.t_ms, batch.client, count)
        auth = (batch.status == 401) | (batch.status == 403)
        self.auth.add(batch.t_ms[auth], batch.client[auth], count)

    def _lines(self, words: Words, buf, stop: int, count: bool) -> tuple[Batch, int]:
        """The lines of buf[:stop], parsed, and how many there are."""
        a = np.frombuffer(buf, np.uint8, stop + 1)
        marks = np.flatnonzero((a == ord("\n")) | (a == ord('"')) | (a == ord("?")))
        byte = a[marks]
        queries = marks[byte == ord("?")]
        marks = marks[byte != ord("?")]
        is_nl = byte[byte != ord("?")] == ord("\n")
        nl_at = np.flatnonzero(is_nl)
        nl, q = marks[nl_at], marks[~is_nl]
        s, e = nl[:-1] + 1, nl[1:]
        e = e - ((e > s) & (a[np.maximum(e - 1, 0)] == ord("\r")))
        qfirst = nl_at[:-1] - np.arange(len(s))  # quotes before each line
        ok = np.diff(nl_at) - 1 == self.fmt.quotes
        if not self.vector or self.fmt.plan is None:
            ok[:] = False
        parts = [self._vectorised(words, buf, s, e, q, qfirst, ok, queries)] if ok.any() else []
        bad = np.flatnonzero(~ok)
        parts.append(self._one_by_one(buf, s[bad].tolist(), e[bad].tolist(), count))
        return Batch.join(parts), len(s)

    def _vectorised(self, words: Bytes, buf, s, e, q, qfirst, ok, queries) -> Batch:
        """The lines whose quotes fall where the format has them, placed with numpy;
        `ok` is cleared for those whose literals or values do not fit (read one by one)."""
        fmt = self.fmt
        rows = np.flatnonzero(ok)
        s, e, qfirst = s[rows], e[rows], qfirst[rows]
        good = np.ones(len(rows), bool)
        spans = locate(fmt.plan, fmt.quotes, set(fmt.wanted), words, s, e, q, qfirst, good)
        t0, t1 = spans[fmt.time_var]
        t_ms = times(words, fmt.time_var, t0, t1 - t0, good)
        status = digits(words.bytes_at(spans["status"][0], 0, 3), good, 0, 1, 2)
        ms = self._durations(words, buf, spans, len(rows))
        parts, prefix, ep_long = self._request_keys(words, spans, queries)
        cl_pos, cl_len = _client_spans(words, spans)
        ok[rows[~good]] = False  # these lines go one by one
        keep = np.flatnonzero(good)
        ep = _ids(self.endpoints, words, buf, [(p[keep], n[keep]) for p, n in parts], prefix)
        for i in np.flatnonzero(ep_long[keep]).tolist():  # a key too long to hash: read it
            ep[i] = self.endpoints.id(self._long_key(buf, spans, int(keep[i])))
        cl = _ids(self.clients, words, buf, [(cl_pos[keep], np.minimum(cl_len[keep], TEXT_WIDTH))])
        return Batch(t_ms[keep], status[keep], ms[keep], ep, cl)

    def _durations(self, words: Words, buf, spans: dict, n: int) -> np.ndarray:
        var = self.fmt.duration_var
        if not var:
            return np.full(n, np.nan)
        d0, d1 = spans[var]
        ms = words.decimals(d0, d1 - d0) * 1000.0
        if var == "upstream_response_time":  # lists ("0.001, 0.002") one by one
            odd = np.flatnonzero(np.isnan(ms) & (d1 - d0 > 1))
            for i, a, b in zip(odd.tolist(), d0[odd].tolist(), d1[odd].tolist(), strict=True):
                got = duration_ms(var, bytes(buf[a:b]))
                ms[i] = np.nan if got is None else got
        return ms

    def _request_keys(self, words: Bytes, spans: dict, queries: np.ndarray):
        """The parts of each line's endpoint key b"METHOD /path" (no query) as (pos,
        length) pairs, the prefix it takes, and where it is too long to hash (read by
        `_long_key`). A request line with no method and path has length 0."""
        r0, r1 = spans[self.fmt.request_var]
        if self.fmt.request_var == "request":
            gap = find(words, r0, r1, b" ")
            p0 = np.where(gap >= 0, gap + 1, r1)
        else:
            p0 = r0
        p1 = _path_end(words, p0, r1, queries, self.fmt.request_var == "request")
        if self.fmt.request_var == "request":
            none = (gap <= r0) | (p1 == p0)  # no space, no method, or no path
            too_long = ~none & ((p1 == -2) | (p1 - r0 > TEXT_WIDTH))
            return [(r0, np.where(none | too_long, 0, p1 - r0))], b"", too_long
        too_long = (p1 == -2) | (p1 - p0 > TEXT_WIDTH)
        length = np.where(too_long, 0, p1 - p0)
        if "request_method" not in spans:
            return [(p0, length)], b"- ", too_long
        m0, m1 = spans["request_method"]
        too_long |= m1 - m0 > TEXT_WIDTH
        return [(m0, np.where(too_long, 0, m1 - m0)), (p0, length)], b"", too_long

    def _long_key(self, buf, spans: dict, i: int) -> bytes:
        r0, r1 = (int(x[i]) for x in spans[self.fmt.request_var])
        if self.fmt.request_var == "request":
            return _request_key(bytes(buf[r0:r1]))
        uri = bytes(buf[r0:r1]).split(b"?", 1)[0]
        method = b"-"
        if "request_method" in spans:
            m0, m1 = (int(x[i]) for x in spans["request_method"])
            method = bytes(buf[m0:m1]) or b"-"
        return method + b" " + uri if uri else b""

    def _one_by_one(self, buf, starts: list[int], ends: list[int], count: bool) -> Batch:
        """Lines numpy did not place: the format's regex, JSON, then combined."""
        rows = []
        for a, b in zip(starts, ends, strict=True):
            row = self._parse_line(bytes(buf[a:b]))
            if row is not None:
                t, status, ms, key, client = row
                ep, cl = self.endpoints.id(key), self.clients.id(client[:TEXT_WIDTH])
                rows.append((t, status, np.nan if ms is None else ms, ep, cl))
            elif count:
                self._unparsed(bytes(buf[a:b]))
        cols = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
        types = (np.int64, np.int64, float, np.int64, np.int64)
        return Batch(*(np.array(c, t) for c, t in zip(cols, types, strict=True)))

    def _parse_line(self, line: bytes) -> tuple | None:
        """(epoch ms, status, duration ms or None, endpoint key, client) or None."""
        for fmt in self._fallbacks:
            m = fmt.regex.fullmatch(line)
            if m is not None:
                row = _row(fmt, m.groupdict())
                if row is not None:
                    return row
            if fmt is self.fmt and self._json_keys:
                row = _json_row(fmt, self._json_keys, line)
                if row is not None:
                    return row
        return None

    def _unparsed(self, line: bytes) -> None:
        s = self.summary
        s.unparsed += 1
        if not s.unparsed_sample:
            s.unparsed_sample = scrub(line.decode("utf-8", "replace"))[:200]

    # -- counting

    def _count(self, batch: Batch, buf, stop: int, lines: int) -> None:
        s = self.summary
        s.lines += lines
        for m in KEY.finditer(buf, 0, stop):
            if buf[m.start() - 1 : m.start()] == b"s" and len(s.key_hits) < 100:
                s.key_hits.append(f"{self.name}:{self.line_base + buf.count(NL, 0, m.start())}")
        self.line_base += lines
        if not len(batch):
            return
        self._latest = max(self._latest, int(batch.t_ms.max()))
        codes, hidx = _groups(batch.t_ms // 3_600_000)
        hours = [s.hour(hour_key(c)) for c in codes.tolist()]
        _statuses(hours, hidx, batch.status)
        used, ep = _groups(batch.ep)
        infos = [self.endpoints.info[i] for i in used.tolist()]
        pairs, which = _groups(hidx * len(used) + ep)
        _endpoints_per_hour(hours, pairs, np.bincount(which), infos)
        timed = ~np.isnan(batch.ms)
        s.untimed += int(len(batch) - np.count_nonzero(timed))
        self._latencies(codes[pairs // len(used)], pairs % len(used), which[timed],
                        batch.ms[timed], infos)  # fmt: skip
        probe = np.array([bool(i and i.probe) for i in infos], bool)[ep]
        for i in np.flatnonzero(probe).tolist():
            who = self.clients.texts[batch.client[i]].decode("ascii", "replace")
            where = f"{hour_key(int(codes[hidx[i]]))}|{who or '-'}"
            s.probe_hits[f"{where} {infos[ep[i]].path} {int(batch.status[i])}"] += 1

    def _latencies(self, pair_hour, pair_ep, which, ms, infos: list) -> None:
        """Histograms per (hour, endpoint) of the timed lines (`which`: their pair), in
        numpy until `close`."""
        if not len(ms):
            return
        b = np.minimum(columns.buckets(ms), _BUCKETS - 1)
        used, which = _groups(which)  # the pairs with timed lines
        n = len(used)
        totals = np.bincount(which, ms, minlength=n)
        dense = n * _BUCKETS <= 1 << 21
        if dense:
            grid = np.bincount(which * _BUCKETS + b, minlength=n * _BUCKETS).reshape(n, _BUCKETS)
        accs = []
        hours, eps = pair_hour[used].tolist(), pair_ep[used].tolist()
        for j, (code, e) in enumerate(zip(hours, eps, strict=True)):
            info = infos[e]
            key = (code, info.name if info else None)
            acc = self._latency.get(key)
            if acc is None:
                acc = self._latency[key] = _Acc()
            acc.total_ms += float(totals[j])
            if dense:
                acc.counts += grid[j]
            accs.append(acc)
        if not dense:
            cells, counts = np.unique(which * _BUCKETS + b, return_counts=True)
            for cell, c in zip(cells.tolist(), counts.tolist(), strict=True):
                accs[cell // _BUCKETS].counts[cell % _BUCKETS] += c
        if len(self._latency) > _OPEN:
            self._flush(keep=int(pair_hour.max()))

    def _flush(self, keep: int | None = None) -> None:
        """Move the histograms into the Summary (but those of hour `keep`, still open)."""
        per_hour: dict[int, _Acc] = {}
        for (code, name), acc in list(self._latency.items()):
            if code == keep:
                continue
            del self._latency[(code, name)]
            total = per_hour.setdefault(code, _Acc())
            total.counts += acc.counts
            total.total_ms += acc.total_ms
            if name:
                _into(
                    self.summary.hour(hour_key(code)).endpoint_latency.setdefault(name, Hist()), acc
                )
        for code, acc in per_hour.items():
            _into(self.summary.hour(hour_key(code)).latency, acc)

    def close(self) -> None:
        self._flush()
        if self._latest > -(1 << 62):
            self.summary.latest = max(self.summary.latest, _stamp(self._latest))


def _into(hist: Hist, acc: _Acc) -> None:
    filled = np.flatnonzero(acc.counts)
    hist.counts.update(dict(zip(filled.tolist(), acc.counts[filled].tolist(), strict=True)))
    hist.n += int(acc.counts.sum())
    hist.total_ms += acc.total_ms


def _statuses(hours: list, hidx: np.ndarray, status: np.ndarray) -> None:
    keys, which = _groups(hidx * 1000 + np.clip(status, 0, 999))
    for key, count in zip(keys.tolist(), np.bincount(which).tolist(), strict=True):
        h, code = hours[key // 1000], key % 1000
        h.requests += count
        h.status[f"{code // 100}xx"] += count
        h.codes[f"{code:03d}"] += count


def _endpoints_per_hour(hours: list, pairs: np.ndarray, counts: np.ndarray, infos: list) -> None:
    for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True):
        info = infos[pair % len(infos)]
        if info is None:
            continue
        h = hours[pair // len(infos)]
        h.endpoints[info.name] += count
        if info.name == GENERATE:
            h.generations += count


_PROTOCOL = np.uint64(int.from_bytes(b" HTTP/", "little"))
_PROTOCOL_MASK = np.uint64((1 << 48) - 1)


def _path_end(words: Bytes, p0, r1, queries: np.ndarray, protocol: bool) -> np.ndarray:
    """Where each path in [p0, r1) ends: at its first "?" (`queries`: where every "?"
    is), else before " HTTP/x.y" (a request line's end), else at the first space; -2
    where none of them is found close enough."""
    end = r1.copy()
    if protocol:
        tail = np.maximum(r1 - 9, p0)
        known = (r1 - p0 >= 9) & ((words.at(tail) & _PROTOCOL_MASK) == _PROTOCOL)
        end = np.where(known, tail, -1)
        odd = np.flatnonzero(~known)
        if len(odd):
            end[odd] = find(words, p0[odd], r1[odd], b" ")
        end = np.where(end == -1, r1, end)
    if len(queries):
        i = np.minimum(np.searchsorted(queries, p0), len(queries) - 1)
        first = queries[i]
        ask = (first >= p0) & (first < np.where(end == -2, r1, end))
        end = np.where(ask, first, end)
    return end


def _ids(keys: Keys, words: Words, buf, parts: list, prefix: bytes = b"") -> np.ndarray:
    """Each line's id in `keys` of the text made of its `parts` ((pos, length) pairs)
    joined by spaces, after `prefix` (b"" when a part is empty)."""
    if not len(parts[0][0]):
        return np.zeros(0, np.int64)
    digest = None
    for pos, length in parts:
        h = words.text_hash(pos, length)
        digest = h if digest is None else (digest * _MIX) ^ h

    def read(i: int) -> bytes:
        pieces = [bytes(buf[int(p[i]) : int(p[i]) + int(n[i])]) for p, n in parts]
        return prefix + b" ".join(pieces) if all(pieces) else b""

    return keys.ids(digest, read)


def _client_spans(words: Words, spans: dict) -> tuple[np.ndarray, np.ndarray]:
    """Each line's client: the first address of X-Forwarded-For, else $remote_addr."""
    if "http_x_forwarded_for" not in spans:
        r0, r1 = spans["remote_addr"]
        return r0, r1 - r0
    x0, x1 = spans["http_x_forwarded_for"]
    comma = find(words, x0, x1, b",")
    x1 = np.where(comma == -1, x1, np.where(comma == -2, x0 + TEXT_WIDTH, comma))
    n = x1 - x0
    dash = (n == 1) & (words.bytes_at(x0, 0, 1)[0] == ord("-"))
    use = (n > 0) & ~dash
    if "remote_addr" not in spans:
        return x0, np.where(use, n, 0)
    r0, r1 = spans["remote_addr"]
    return np.where(use, x0, r0), np.where(use, n, r1 - r0)


def _request_key(request: bytes) -> bytes:
    """b"POST /path?x HTTP/1.1" -> b"POST /path": the path runs from the first space to a
    final " HTTP/x.y" (else to the next space), the query left out; b"" when the
    request line holds no method and path."""
    method, sep, rest = request.partition(b" ")
    if not method or not sep:
        return b""
    target = rest[:-9] if rest[-9:-3] == b" HTTP/" else rest.split(b" ", 1)[0]
    target = target.split(b"?", 1)[0]
    return method + b" " + target if target else b""


def _row(fmt: LogFormat, get: dict) -> tuple | None:
    """(epoch ms, status, duration ms or None, endpoint key, client) of one line's values."""
    t = time_ms(fmt.time_var, get.get(fmt.time_var) or b"")
    status = get.get("status") or b""
    if t is None or not re.fullmatch(rb"\d{3}", status):
        return None
    ms = None
    if fmt.duration_var:
        ms = duration_ms(fmt.duration_var, get.get(fmt.duration_var) or b"")
    if fmt.request_var == "request":
        key = _request_key(get.get("request") or b"")
    else:
        uri = (get.get("request_uri") or b"").split(b"?", 1)[0]
        key = (get.get("request_method") or b"-") + b" " + uri if uri else b""
    xff = (get.get("http_x_forwarded_for") or b"").split(b",", 1)[0]
    client = xff if xff and xff != b"-" else get.get("remote_addr") or b""
    return t, int(status), ms, key, client


def _json_keys(fmt: LogFormat) -> dict[str, str]:
    """The JSON keys of a JSON format whose value is one variable: key -> variable."""
    keys = {}
    for m in re.finditer(r'"([^"\\]+)"\s*:\s*"?\$\{?([A-Za-z0-9_]+)\}?"?\s*[,}]', fmt.text):
        keys[m.group(1)] = m.group(2).lower()
    return keys


def _json_row(fmt: LogFormat, keys: dict[str, str], line: bytes) -> tuple | None:
    """A JSON line read by `json.loads`, its values mapped by the format's keys."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    values = {}
    for key, var in keys.items():
        if key in doc and doc[key] is not None:
            v = doc[key]
            values[var] = (v if isinstance(v, str) else json.dumps(v)).encode("utf-8", "replace")
    return _row(fmt, values)


def _lead_in(f: BinaryIO, scanner: AccessScanner) -> None:
    """The lines just before where `f` stands, for the 60 s windows only."""
    try:
        start = f.tell() if f.seekable() else 0
    except (OSError, ValueError):
        return
    if start <= 0:
        return
    f.seek(max(0, start - LEAD_IN))
    data = f.read(start - f.tell())
    f.seek(start)
    cut = data.find(NL) + 1 if start > LEAD_IN else 0
    body = data[cut:] if cut or start <= LEAD_IN else b""
    if body.endswith(NL):
        scanner.feed(bytearray(b"\n" + body + bytes(columns.PAD)), len(body), count=False)


def scan_access(
    f: BinaryIO,
    name: str,
    end: int | None = None,
    line_base: int = 0,
    log_format: str = "timed",
    vector: bool = True,
) -> Summary:
    """One pass over an nginx access log stream in `log_format`; returns its Summary."""
    fmt = compile_format(log_format)
    summary = Summary(latency_source=fmt.latency_source)
    scanner = AccessScanner(name, summary, fmt, line_base, vector)
    _lead_in(f, scanner)
    for buf, stop in complete_lines(f, end, summary):
        scanner.feed(buf, stop)
    scanner.close()
    return summary


def cache_tag(fmt: str) -> str:
    """The part of a cache key that names how a log is read: "app", or "access-<id>"
    for an access log read in a format ("access:<log_format>")."""
    return f"access-{format_id(log_format_of(fmt))}" if fmt.startswith("access") else fmt


def log_format_of(fmt: str) -> str:
    """The nginx log_format of "access:<log_format>" ("timed" for plain "access")."""
    return fmt.partition(":")[2] or "timed"
