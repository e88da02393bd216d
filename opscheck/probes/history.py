"""Series of stored evidence values from the history database, and the math on them.

Reads only; a history that cannot be read is a ProbeError saying why. Times are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from statistics import median

from opscheck.history import Database, HistoryError
from opscheck.probes import ProbeError

STAMP = "%Y-%m-%dT%H:%M:%SZ"


def stamp(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime(STAMP)


def parse(text: str) -> datetime:
    return datetime.strptime(text, STAMP).replace(tzinfo=UTC)


@dataclass
class Series:
    """The stored values of one evidence line of one check row, oldest first."""

    label: str
    unit: str
    limit: float | None = None
    times: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def between(self, start: datetime, end: datetime) -> list[float]:
        return [v for t, v in zip(self.times, self.values, strict=True) if start <= t < end]


def series(
    db: Database,
    check_ids: Iterable[str],
    unit: str,
    since: datetime,
    until: datetime,
    by_name: bool = True,
) -> list[Series]:
    """Values with `unit` of these checks, one Series per check, parameter (and evidence
    name, if `by_name`: a name that holds the log's source may change with it)."""
    ids = list(check_ids)
    try:
        points = db.call("reading", "points", ids, stamp(since), stamp(until))
    except HistoryError as exc:
        raise ProbeError(str(exc)) from None
    found: dict[str, Series] = {}
    for p in points:
        if p.unit != unit:
            continue
        param = this_machine(p.param)
        label = p.check_id + (f"[{param}]" if param else "")
        label += f" {p.name}" if by_name else ""
        s = found.setdefault(label, Series(label, unit))
        s.limit = p.limit
        s.times.append(parse(p.started))
        s.values.append(p.value)
    return list(found.values())


def this_machine(param: str) -> str:
    """A row's parameter with this machine's host id left out ("local" -> "",
    "local-/" -> "/"): its values before hosts existed were stored without it, and one
    series must not break in two at the upgrade."""
    if param == "local":
        return ""
    return param[len("local-") :] if param.startswith("local-") else param


def stored_series(
    db: Database,
    check_ids: list[str],
    unit: str,
    days: int,
    now: datetime,
    by_name: bool = True,
) -> list[Series]:
    """`series` over the `days` before `now`; none stored is a ProbeError naming what lacks."""
    found = series(db, check_ids, unit, now - timedelta(days=days), now, by_name)
    if not found:
        raise ProbeError(
            f"the history ({db.where()}) holds no {' or '.join(check_ids)} values in {unit} "
            f"from the last {days} days (the daily runs store them)"
        )
    return found


@dataclass(frozen=True)
class Weeks:
    """One series' values in the 7 days before `now` and in the 7 days before those."""

    label: str
    this: list[float]
    before: list[float]

    @property
    def medians(self) -> tuple[float, float]:
        return median(self.this), median(self.before)


def weeks(found: list[Series], now: datetime) -> list[Weeks]:
    week = timedelta(days=7)
    return [
        Weeks(s.label, s.between(now - week, now), s.between(now - 2 * week, now - week))
        for s in found
    ]


def too_few(found: list[Weeks], need: int) -> list[str]:
    """What each series lacks for a week-over-week comparison, in words."""
    return [
        f"{w.label} has {len(w.this)} values this week and {len(w.before)} the week before"
        for w in found
        if len(w.this) < need or len(w.before) < need
    ]


@dataclass(frozen=True)
class Fit:
    """A least-squares line through a series: %/day, and its value at the fit's end."""

    n: int
    slope_per_day: float
    value_now: float

    def days_until(self, limit: float) -> float | None:
        """Days until the line reaches `limit` (0: already there; None: not growing)."""
        if self.value_now >= limit:
            return 0.0
        if self.slope_per_day <= 0:
            return None
        return (limit - self.value_now) / self.slope_per_day


def fit(s: Series, now: datetime) -> Fit | None:
    """The least-squares line through `s` (None: its values are all from one moment)."""
    xs = [(t - now).total_seconds() / 86400 for t in s.times]
    n = len(xs)
    mx, my = sum(xs) / n, sum(s.values) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, s.values, strict=True)) / sxx
    return Fit(n, slope, my + slope * (0 - mx))


def quarter_start(now: datetime, tz: tzinfo | None) -> datetime:
    """The start of `now`'s calendar quarter in zone `tz` (None: this machine's zone)."""
    local = now.astimezone(tz)
    month = 3 * ((local.month - 1) // 3) + 1
    return local.replace(month=month, day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Drill:
    """One stored restore_drill: when, its outcome, and its restore time (s) if stored."""

    started: datetime
    outcome: str
    seconds: float | None


def _is_restore_time(name: str) -> bool:
    """A drill's "restore time", or a remote backup host's ("bk@10.0.0.9: restore time")."""
    return name == "restore time" or name.endswith(": restore time")


def drills(db: Database, since: datetime, until: datetime) -> list[Drill]:
    """The restore_drill results stored in the window, oldest first."""
    try:
        results = db.call("reading", "outcomes", "restore_drill", stamp(since), stamp(until))
        points = db.call("reading", "points", ["restore_drill"], stamp(since), stamp(until))
    except HistoryError as exc:
        raise ProbeError(str(exc)) from None
    times = {(p.started, p.nodeid): p.value for p in points if _is_restore_time(p.name)}
    return [Drill(parse(r.started), r.outcome, times.get((r.started, r.nodeid))) for r in results]
