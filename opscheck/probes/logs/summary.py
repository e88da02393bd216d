"""What one pass over a log leaves behind: counts per clock hour, mergeable.

Every figure is kept per UTC clock hour ("2026-11-25 05") so that any window
("the last 24 h", "each of the previous 7 days") is a merge of hours, whatever file
the lines came from. Latency is a log-bucket histogram with 1 % wide buckets, so a
percentile read from it is within 1 % of the exact one, and histograms add up.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LOG_BASE = math.log(1.01)
MAX_SIGNATURES = 300  # distinct signatures kept per hour; the rest count as "(other)"
OTHER = "(other signatures)"


def bucket(ms: float) -> int:
    """The histogram bucket of a duration: [1.01^b, 1.01^(b+1)) ms; 0 holds < 1 ms."""
    return int(math.log(ms) / LOG_BASE) + 1 if ms >= 1 else 0


def bucket_mid(b: int) -> float:
    """A representative value of bucket `b` (its geometric middle), in ms."""
    return 0.5 if b == 0 else math.exp((b - 0.5) * LOG_BASE)


@dataclass
class Hist:
    counts: Counter = field(default_factory=Counter)
    n: int = 0
    total_ms: float = 0.0

    def add(self, ms: float, n: int = 1) -> None:
        self.counts[bucket(ms)] += n
        self.n += n
        self.total_ms += ms * n

    def add_in(self, b: int, ms: float) -> None:
        """Count one duration of `ms` whose bucket `b` the caller already knows."""
        self.counts[b] += 1
        self.n += 1
        self.total_ms += ms

    def merge(self, other: Hist) -> None:
        self.counts.update(other.counts)
        self.n += other.n
        self.total_ms += other.total_ms

    @property
    def mean_ms(self) -> float | None:
        return self.total_ms / self.n if self.n else None

    def quantile_ms(self, q: float) -> float | None:
        """The q-quantile (0-1), within 1 % of the exact value."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return bucket_mid(b)
        return None

    def over(self, ms: float) -> int:
        """How many took longer than `ms` (to the bucket containing `ms`)."""
        edge = bucket(ms)
        return sum(c for b, c in self.counts.items() if b > edge)

    def to_json(self) -> dict[str, Any]:
        """Buckets and counts as two lists (JSON object keys would be strings)."""
        counts = self.counts
        return {"b": list(counts), "c": list(counts.values()), "n": self.n, "t": self.total_ms}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Hist:
        return cls(Counter(dict(zip(d["b"], d["c"], strict=True))), d["n"], d["t"])


def _capped_update(target: Counter, source: Counter) -> None:
    target.update(source)
    if len(target) > MAX_SIGNATURES:
        keep = dict(target.most_common(MAX_SIGNATURES - 1))
        other = sum(target.values()) - sum(keep.values())
        target.clear()
        target.update(keep)
        target[OTHER] += other


@dataclass
class Hour:
    """Everything counted for one UTC clock hour."""

    requests: int = 0  # responses written (Response lines + Request failed lines)
    status: Counter = field(default_factory=Counter)  # "2xx" ... "5xx"
    latency: Hist = field(default_factory=Hist)
    generations: int = 0  # POST /api/v1/templates/generate (each at least one LLM call)
    endpoints: Counter = field(default_factory=Counter)  # "POST /api/v1/templates/generate"
    endpoint_latency: dict[str, Hist] = field(default_factory=dict)  # access log only
    errors: Counter = field(default_factory=Counter)  # ERROR signature -> lines
    warnings: Counter = field(default_factory=Counter)  # WARNING signature -> lines
    codes: Counter = field(default_factory=Counter)  # exact status codes ("499", "504" ...)
    calls: Counter = field(default_factory=Counter)  # httpx: "api.anthropic.com/v1/messages 200"

    def merge(self, o: Hour) -> None:
        self.requests += o.requests
        self.status.update(o.status)
        self.latency.merge(o.latency)
        self.generations += o.generations
        self.endpoints.update(o.endpoints)
        for ep, h in o.endpoint_latency.items():
            self.endpoint_latency.setdefault(ep, Hist()).merge(h)
        _capped_update(self.errors, o.errors)
        _capped_update(self.warnings, o.warnings)
        self.codes.update(o.codes)
        self.calls.update(o.calls)

    @property
    def errors_5xx(self) -> int:
        return self.status.get("5xx", 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "status": dict(self.status),
            "latency": self.latency.to_json(),
            "generations": self.generations,
            "endpoints": dict(self.endpoints),
            "endpoint_latency": {k: v.to_json() for k, v in self.endpoint_latency.items()},
            "errors": dict(self.errors),
            "warnings": dict(self.warnings),
            "codes": dict(self.codes),
            "calls": dict(self.calls),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Hour:
        return cls(
            d["requests"],
            Counter(d["status"]),
            Hist.from_json(d["latency"]),
            d["generations"],
            Counter(d["endpoints"]),
            {k: Hist.from_json(v) for k, v in d["endpoint_latency"].items()},
            Counter(d["errors"]),
            Counter(d["warnings"]),
            Counter(d.get("codes", {})),
            Counter(d.get("calls", {})),
        )


@dataclass
class Summary:
    """One file's (or a window's) worth of counts."""

    hours: dict[str, Hour] = field(default_factory=dict)  # UTC "YYYY-mm-dd HH" -> Hour
    lines: int = 0
    records: int = 0  # lines that start a record (a timestamp in the service's format)
    levels: Counter = field(default_factory=Counter)  # INFO/WARNING/ERROR/... lines
    continuation: int = 0  # lines without a timestamp (tracebacks, multi-line messages)
    unparsed: int = 0  # timestamped-looking lines that did not parse, bad bytes and all
    overlong: int = 0  # lines cut at the line-length limit
    key_hits: list[str] = field(default_factory=list)  # "file:line" of API-key-shaped strings
    # access log only, keyed "<hour>|<client>" so windows apply to them too:
    clients_over_rate: dict[str, int] = field(default_factory=dict)  # peak requests a minute
    probe_hits: Counter = field(default_factory=Counter)  # "<hour>|<client> <path> <status>"
    auth_bursts: dict[str, int] = field(default_factory=dict)  # peak 401/403 a minute
    latency_source: str = ""  # "app log (server side)" or "access log ($request_time)"
    notes: list[str] = field(default_factory=list)  # what could not be read: truncated gzip ...
    latest: str = ""  # the latest line stamp seen, UTC "YYYY-mm-dd HH:MM:SS"
    unparsed_sample: str = ""  # one line that did not parse (scrubbed, cut to 200 chars)
    untimed: int = 0  # responses without a duration (an access log format without timings)

    def hour(self, key: str) -> Hour:
        h = self.hours.get(key)
        if h is None:
            h = self.hours[key] = Hour()
        return h

    def merge(self, o: Summary) -> None:
        for k, h in o.hours.items():
            self.hour(k).merge(h)
        self.lines += o.lines
        self.records += o.records
        self.levels.update(o.levels)
        self.continuation += o.continuation
        self.unparsed += o.unparsed
        self.overlong += o.overlong
        self.key_hits += o.key_hits[: max(0, 100 - len(self.key_hits))]
        for c, v in o.clients_over_rate.items():
            self.clients_over_rate[c] = max(v, self.clients_over_rate.get(c, 0))
        self.probe_hits.update(o.probe_hits)
        for c, v in o.auth_bursts.items():
            self.auth_bursts[c] = max(v, self.auth_bursts.get(c, 0))
        self.latency_source = self.latency_source or o.latency_source
        self.notes += o.notes
        self.latest = max(self.latest, o.latest)
        self.unparsed_sample = self.unparsed_sample or o.unparsed_sample
        self.untimed += o.untimed

    @staticmethod
    def in_hours(table: dict, keys: Iterable[str], add: bool = False) -> dict[str, int]:
        """Entries of an "<hour>|<rest>" table within the given hours, by <rest>: the
        peak (rates) or, with `add`, the sum (hit counts)."""
        wanted = set(keys)
        out: dict[str, int] = {}
        for k, v in table.items():
            hour, _, rest = k.partition("|")
            if hour in wanted:
                out[rest] = out.get(rest, 0) + v if add else max(v, out.get(rest, 0))
        return out

    def window(self, keys: Iterable[str]) -> Hour:
        """The hours named by `keys`, merged."""
        total = Hour()
        for k in keys:
            if k in self.hours:
                total.merge(self.hours[k])
        return total

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "hours"}
        d["levels"] = dict(self.levels)
        d["probe_hits"] = dict(self.probe_hits)
        d["hours"] = {k: h.to_json() for k, h in self.hours.items()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Summary:
        s = cls(**{k: v for k, v in d.items() if k != "hours"})
        s.levels, s.probe_hits = Counter(d["levels"]), Counter(d["probe_hits"])
        s.hours = {k: Hour.from_json(v) for k, v in d["hours"].items()}
        return s
