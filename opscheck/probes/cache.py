"""Redis cache: TTLs, idle times and hit counters, read without changing anything.

Keys are walked with `SCAN` (never `KEYS`, which blocks a production server), each batch
followed by one pipelined round of `TTL` and `OBJECT IDLETIME` per key; neither touches a
key's access time (a `GET` would). The walk stops at `sample_keys` keys or `scan_max_s`
seconds, and says so. Redis counts a `TTL` or `OBJECT` lookup as a keyspace hit, so the
survey records the hits and misses it caused (per server `run_id`) for the hit ratio to
take back out.
"""

from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from opscheck.probes import ProbeError
from opscheck.scrub import redact_url, scrub

SCAN_COUNT = 1000
EXAMPLES = 5
LFU_REFUSAL = "An LFU maxmemory policy is selected"


def glob_regex(pattern: str) -> re.Pattern[bytes]:
    """A Redis glob (`*`, `?`, `[a-z]`, `[^x]`, `\\` escapes) as a bytes regex."""
    out, i, raw = [], 0, pattern.encode()
    while i < len(raw):
        c = raw[i : i + 1]
        if c == b"\\" and i + 1 < len(raw):
            out.append(re.escape(raw[i + 1 : i + 2]))
            i += 2
            continue
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"[" and b"]" in raw[i + 1 :]:
            end = raw.index(b"]", i + 2 if raw[i + 1 : i + 2] in (b"^", b"]") else i + 1)
            body = raw[i + 1 : end]
            neg = body.startswith(b"^")
            body = body[1:] if neg else body
            out.append(b"[" + (b"^" if neg else b"") + body.replace(b"\\", b"\\\\") + b"]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out) + b"\\Z", re.S)


def shown(url: str) -> str:
    """The URL as it may be printed: no user, no password."""
    try:
        return redact_url(url)
    except ValueError:
        return scrub(url)


def _fail(url: str, what: str, exc: Exception) -> ProbeError:
    text = " ".join(str(exc).split()) or type(exc).__name__
    password = _password(url)
    if password:
        text = text.replace(password, "[redacted]")
    return ProbeError(scrub(f"{what} {shown(url)}: {text}"))


def _password(url: str) -> str:
    try:
        return redis.connection.parse_url(url).get("password") or ""
    except ValueError:
        return ""


def client(url: str, timeout_s: float, authenticate: bool = True) -> redis.Redis:
    """A connected client for `url` (one bounded try, no retries); without the URL's
    credentials when `authenticate` is false. Errors are ProbeError, password-free."""
    try:
        params = redis.connection.parse_url(url)
    except ValueError:  # its text quotes the URL's parts: the password's among them
        raise ProbeError(
            "[redis] url is not a Redis URL (redis://[user:password@]host:port/db; "
            "a password holding '/', '?', '#' or '@' must be percent-encoded)"
        ) from None
    if not authenticate:
        params.pop("username", None)
        params.pop("password", None)
    use_tls = params.pop("connection_class", None) is redis.SSLConnection
    try:
        return redis.Redis(
            **params,
            ssl=use_tls,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            single_connection_client=True,
        )
    except redis.AuthenticationError as exc:
        raise _fail(url, "Redis refused the credentials at", exc) from None
    except (redis.RedisError, OSError) as exc:
        raise _fail(url, "cannot reach Redis at", exc) from None


def connect(url: str, timeout_s: float) -> redis.Redis:
    """A client that has answered PING with the URL's credentials, or ProbeError."""
    r = client(url, timeout_s)
    try:
        r.ping()
    except redis.AuthenticationError as exc:
        r.close()
        raise _fail(url, "Redis refused the credentials at", exc) from None
    except (redis.RedisError, OSError) as exc:
        r.close()
        raise _fail(url, "cannot reach Redis at", exc) from None
    return r


@dataclass(frozen=True)
class AuthProbe:
    """What an unauthenticated PING got: `answered` means Redis served it."""

    answered: bool
    reply: str


def unauthenticated_ping(url: str, timeout_s: float) -> AuthProbe:
    """PING the URL's host and port without user or password."""
    try:
        r = client(url, timeout_s, authenticate=False)
    except ProbeError as exc:
        if "NOAUTH" in str(exc) or "Authentication required" in str(exc):
            return AuthProbe(False, "NOAUTH Authentication required")
        raise
    try:
        reply = r.execute_command("PING")
        return AuthProbe(True, "PONG" if reply is True else str(reply))
    except (redis.AuthenticationError, redis.exceptions.NoPermissionError) as exc:
        return AuthProbe(False, " ".join(str(exc).split())[:80])
    except (redis.RedisError, OSError) as exc:
        raise _fail(url, "cannot reach Redis at", exc) from None
    finally:
        r.close()


@dataclass(frozen=True)
class Stats:
    """INFO's counters and settings that the cache checks read."""

    hits: int
    misses: int
    run_id: str
    uptime_s: int
    maxmemory_policy: str
    version: str

    @property
    def lfu(self) -> bool:
        return "lfu" in self.maxmemory_policy


def stats(r: redis.Redis, url: str) -> Stats:
    try:
        info = r.info()
    except (redis.RedisError, OSError) as exc:
        raise _fail(url, "INFO failed at", exc) from None
    return Stats(
        hits=int(info.get("keyspace_hits", 0)),
        misses=int(info.get("keyspace_misses", 0)),
        run_id=str(info.get("run_id", "")),
        uptime_s=int(info.get("uptime_in_seconds", 0)),
        maxmemory_policy=str(info.get("maxmemory_policy", "unknown")),
        version=str(info.get("redis_version", "")),
    )


@dataclass
class PatternCount:
    """Keys of one ttl_policy pattern (`pattern` None: keys matching no pattern)."""

    pattern: str | None
    policy_s: int | None
    keys: int = 0
    no_ttl: int = 0
    over: int = 0
    max_ttl_s: int = 0
    no_ttl_examples: list[str] = field(default_factory=list)
    over_examples: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Survey:
    """What a bounded SCAN walk saw: counts per pattern, idle keys, how much was seen."""

    dbsize: int
    inspected: int
    complete: bool
    stopped_by: str  # "" when the walk reached the end
    elapsed_s: float
    patterns: list[PatternCount]
    idle_limit_s: float
    idle_tracked: bool
    idle_note: str
    idle_over: int = 0
    max_idle_s: int = 0
    idle_examples: list[tuple[str, int]] = field(default_factory=list)
    vanished: int = 0  # expired or deleted between SCAN and TTL
    own_hits: int = 0
    own_misses: int = 0

    @property
    def keys_per_s(self) -> float:
        return self.inspected / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def coverage(self) -> str:
        if self.complete:
            return f"all {self.inspected} keys"
        return f"{self.inspected} of {self.dbsize} keys (stopped by {self.stopped_by})"


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]}


def key_text(key: bytes) -> str:
    """A key as it may be printed on one line: control bytes and bad UTF-8 escaped."""
    return scrub(key.decode("utf-8", "backslashreplace").translate(_CONTROL))[:120]


def _packed(verb: bytes, args: list[bytes], keys: list[bytes]) -> bytes:
    """RESP commands `verb *args key` for every key, ready to send in one write."""
    head = b"*%d\r\n$%d\r\n%s\r\n" % (len(args) + 2, len(verb), verb)
    head += b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    return b"".join([b"%s$%d\r\n%s\r\n" % (head, len(k), k) for k in keys])


class _Stream:
    """RESP replies read straight from a connected redis-py connection's socket.

    redis-py's pure-Python parser costs more per reply than Redis takes to answer it, so
    the walk reads in bulk: SCAN's multi-bulk by lengths, and the one-line replies of TTL
    and OBJECT IDLETIME (an integer, a nil or an error) with one regex per batch."""

    def __init__(self, conn: redis.Connection) -> None:
        if conn._sock is None:
            conn.connect()
        self.sock, self.buf, self.pos = conn._sock, bytearray(), 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        if self.pos > 1 << 20:
            del self.buf[: self.pos]
            self.pos = 0
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise redis.ConnectionError("Redis closed the connection")
        self.buf += chunk

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        text, self.pos = bytes(self.buf[self.pos : end]), end + 2
        if text[:1] == b"-":
            raise redis.ResponseError(text[1:].decode("utf-8", "replace"))
        return text

    def scan_reply(self) -> tuple[int, list[bytes]]:
        """SCAN's `[cursor, [key ...]]`, parsed once the whole reply is in the buffer."""
        while (got := _scan_reply(self.buf, self.pos)) is None:
            self._fill()
        cursor, keys, self.pos = got
        return cursor, keys

    def one_line_replies(self, count: int) -> list[int | redis.ResponseError | None]:
        block = _block(count)
        while (m := block.match(self.buf, self.pos)) is None:
            self._fill()
        self.pos = m.end()
        ints = _INT_REPLY.findall(m.group(0))
        if len(ints) == count:  # the usual case: integers only
            return list(map(int, ints))
        return [_value(kind, text) for kind, text in _REPLY.findall(m.group(0))]


def _scan_reply(buf: bytearray, pos: int) -> tuple[int, list[bytes], int] | None:
    """A complete SCAN reply at `pos`: (cursor, keys, end), or None while it is incomplete."""
    if buf[pos : pos + 1] == b"-":
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        raise redis.ResponseError(bytes(buf[pos + 1 : end]).decode("utf-8", "replace"))
    m = _SCAN_HEAD.match(buf, pos)
    if m is None:
        return None
    cursor, count, pos = int(m.group(2)), int(m.group(3)), m.end()
    keys, find, size = [], buf.find, len(buf)
    for _ in range(count):
        end = find(b"\r\n", pos)
        if end < 0:
            return None
        start = end + 2
        stop = start + int(buf[pos + 1 : end])
        if stop + 2 > size:
            return None
        keys.append(bytes(buf[start:stop]))
        pos = stop + 2
    return cursor, keys, pos


_SCAN_HEAD = re.compile(rb"\*2\r\n\$(\d+)\r\n(\d+)\r\n\*(\d+)\r\n")
_INT_REPLY = re.compile(rb":(-?\d+)\r\n")
_REPLY = re.compile(rb"([:\-$_+])([^\r\n]*)\r\n")


@functools.lru_cache(maxsize=8)
def _block(count: int) -> re.Pattern[bytes]:
    return re.compile(rb"(?:[:\-$_+][^\r\n]*\r\n){%d}" % count)


def _value(kind: bytes, text: bytes) -> int | redis.ResponseError | None:
    if kind == b":":
        return int(text)
    if kind == b"-":
        return redis.ResponseError(text.decode("utf-8", "replace"))
    if kind == b"+":
        return 0  # a status (+OK): not a value any lookup here returns
    return None  # $-1 or _ : nil


def _scan_command(cursor: int) -> bytes:
    c = b"%d" % cursor
    return b"*4\r\n$4\r\nSCAN\r\n$%d\r\n%s\r\n$5\r\nCOUNT\r\n$%d\r\n%d\r\n" % (
        len(c),
        c,
        len(str(SCAN_COUNT)),
        SCAN_COUNT,
    )


class Matcher:
    """The first ttl_policy pattern a key matches (config order), or the no-pattern row."""

    def __init__(self, policy: dict[str, int]) -> None:
        self.rows = [PatternCount(p, s) for p, s in policy.items()]
        self.other = PatternCount(None, None)
        parts = [b"(" + glob_regex(p).pattern + b")" for p in policy]
        self.regex = re.compile(b"|".join(parts), re.S) if parts else None

    def row(self, key: bytes) -> PatternCount:
        m = self.regex.match(key) if self.regex else None
        return self.rows[m.lastindex - 1] if m else self.other


def survey(
    r: redis.Redis,
    url: str,
    policy: dict[str, int],
    idle_limit_s: float,
    lfu: bool,
    sample_keys: int,
    max_s: float,
) -> Survey:
    """Walk the keyspace (bounded by `sample_keys` and `max_s`), counting per pattern the
    keys without a TTL or above `policy`, and the keys idle longer than `idle_limit_s`."""
    try:
        return _walk(r, policy, idle_limit_s, lfu, sample_keys, max_s)
    except (redis.RedisError, OSError, ValueError) as exc:
        r.close()  # the stream may be out of step: never reuse this connection
        raise _fail(url, "the key survey failed at", exc) from None


def _walk(
    r: redis.Redis, policy: dict[str, int], idle_limit_s: float, lfu: bool, limit: int, max_s: float
) -> Survey:
    """SCAN, then for each batch one write of its lookups plus the next SCAN; while Redis
    answers them, the previous batch is tallied."""
    start = time.monotonic()
    dbsize = int(r.dbsize())
    note = "maxmemory-policy is LFU: Redis keeps access counts, not idle times" if lfu else ""
    s = Survey(dbsize, 0, False, "", 0.0, [], idle_limit_s, not lfu, note)
    match, io = Matcher(policy), _Stream(r.connection)
    io.send(_scan_command(0))
    cursor, keys = io.scan_reply()
    taken, stopped, previous = 0, "", None
    while True:
        cut = len(keys) > limit - taken
        keys = keys[: max(0, limit - taken)]
        taken += len(keys)
        last = cursor == 0 or taken >= limit or time.monotonic() - start > max_s
        out = _packed(b"TTL", [], keys)
        if s.idle_tracked:
            out += _packed(b"OBJECT", [b"IDLETIME"], keys)
        io.send(out if last else out + _scan_command(cursor))
        if previous:
            _tally(s, match, *previous)
        ttls = io.one_line_replies(len(keys))
        idles = io.one_line_replies(len(keys)) if s.idle_tracked and keys else []
        previous = (keys, ttls, idles)
        if last:
            if cursor != 0 or cut:
                stopped = (
                    f"sample_keys = {limit}" if taken >= limit else f"scan_max_s = {max_s:g} s"
                )
            break
        cursor, keys = io.scan_reply()
    _tally(s, match, *previous)
    s.complete, s.stopped_by = not stopped, stopped
    s.elapsed_s = time.monotonic() - start
    s.patterns = [*match.rows, match.other]
    return s


def _tally(s: Survey, match: Matcher, keys: list[bytes], ttls: list, idles: list) -> None:
    if idles and isinstance(idles[0], redis.ResponseError):
        if LFU_REFUSAL not in str(idles[0]):
            raise idles[0]
        s.idle_tracked = False
        s.idle_note = f"OBJECT IDLETIME is refused: {' '.join(str(idles[0]).split())[:90]}"
        idles = []
    per_key, limit, gone = 2 if idles else 1, s.idle_limit_s, 0
    for n, key in enumerate(keys):
        ttl = ttls[n]
        if ttl == -2 or ttl is None:
            gone += 1
            continue
        if isinstance(ttl, Exception):
            raise ttl
        row = match.row(key)
        row.keys += 1
        if ttl == -1:
            row.no_ttl += 1
            if len(row.no_ttl_examples) < EXAMPLES:
                row.no_ttl_examples.append(key_text(key))
        else:
            if ttl > row.max_ttl_s:
                row.max_ttl_s = ttl
            if row.policy_s and ttl > row.policy_s:
                row.over += 1
                if len(row.over_examples) < EXAMPLES:
                    row.over_examples.append((key_text(key), ttl))
        if idles:
            idle = idles[n]
            if isinstance(idle, int) and idle > limit:
                s.idle_over += 1
                if len(s.idle_examples) < EXAMPLES:
                    s.idle_examples.append((key_text(key), idle))
                if idle > s.max_idle_s:
                    s.max_idle_s = idle
            elif isinstance(idle, int) and idle > s.max_idle_s:
                s.max_idle_s = idle
    s.inspected += len(keys) - gone
    s.vanished += gone
    s.own_hits += per_key * (len(keys) - gone)
    s.own_misses += per_key * gone


# ---- the suite's own lookups, taken back out of the hit ratio ------------------------


def own_lookups(state: Path, run_id: str) -> tuple[int, int]:
    """Hits and misses the suite's surveys caused on the server `run_id` (0, 0 if none)."""
    try:
        doc = json.loads(state.read_text())
    except (OSError, ValueError):
        return 0, 0
    got = doc.get(run_id, {}) if isinstance(doc, dict) else {}
    return int(got.get("hits", 0)), int(got.get("misses", 0))


def remember_lookups(state: Path, run_id: str, hits: int, misses: int) -> None:
    """Add a survey's own hits and misses to the record for server `run_id`."""
    old_hits, old_misses = own_lookups(state, run_id)
    try:
        doc = json.loads(state.read_text())
    except (OSError, ValueError):
        doc = {}
    doc = {run_id: {"hits": old_hits + hits, "misses": old_misses + misses}} | {
        k: v for k, v in doc.items() if k != run_id
    }
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(dict(list(doc.items())[:20])))


class Session:
    """One run's view of the cache: connects, reads INFO and surveys at most once each,
    and remembers a failure so every cache check reports it without waiting again."""

    def __init__(
        self, url: str, timeout_s: float, state: Path, policy: dict[str, int], idle_limit_s: float
    ) -> None:
        self.url, self.timeout_s, self.state = url, timeout_s, state
        self.policy, self.idle_limit_s = policy, idle_limit_s
        self._done: dict[str, Any] = {}

    def _once(self, name: str, make: Any) -> Any:
        if name not in self._done:
            try:
                self._done[name] = make()
            except ProbeError as exc:
                self._done[name] = exc
        got = self._done[name]
        if isinstance(got, ProbeError):
            raise got
        return got

    def client(self) -> redis.Redis:
        return self._once("client", lambda: connect(self.url, self.timeout_s))

    def stats(self) -> Stats:
        return self._once("stats", lambda: stats(self.client(), self.url))

    def survey(self, sample_keys: int, max_s: float) -> Survey:
        def make() -> Survey:
            info = self.stats()
            s = survey(
                self.client(),
                self.url,
                self.policy,
                self.idle_limit_s,
                info.lfu,
                sample_keys,
                max_s,
            )
            remember_lookups(self.state, info.run_id, s.own_hits, s.own_misses)
            return s

        return self._once("survey", make)

    def hit_counts(self) -> tuple[Stats, int, int]:
        """Fresh INFO counters, and the hits and misses the suite's own surveys added."""
        fresh = stats(self.client(), self.url)
        own_hits, own_misses = own_lookups(self.state, fresh.run_id)
        return fresh, own_hits, own_misses

    def close(self) -> None:
        got = self._done.get("client")
        if isinstance(got, redis.Redis):
            got.close()
