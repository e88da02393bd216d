"""The service's logs, summarised once per run: app log and nginx access log.

`view(path, ...)` returns the merged Summary of a log and its rotated siblings
(cached on disk by content, so already-read files are not read again); windows of
time are lists of UTC hour keys built by `hours_back` (a local day's 24 h is 24 UTC
hours, so a DST fall-back hour is not counted twice). `blind_spots` says what a
Summary could not see; `seen` turns that into a ProbeError, so that no check passes
on the part of a log it could read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from opscheck.probes import ProbeError
from opscheck.probes.host import LocalHost, host_state
from opscheck.probes.hostfiles import files_of
from opscheck.probes.logs.files import olddirs, summarize
from opscheck.probes.logs.summary import Hist, Hour, Summary

__all__ = [
    "Hist",
    "Hour",
    "Summary",
    "blind_spots",
    "hours_back",
    "seen",
    "view",
    "windows",
]

_MEMO: dict[tuple[str, str, str, str], tuple[Summary, dict]] = {}
MAX_UNPARSED_PERCENT = 1.0
FUTURE_SLACK = timedelta(minutes=5)


def view(
    path: str,
    state_dir: Path | None,
    fmt: str = "app",
    workers: int = 2,
    tz: str = "",
    logrotate_conf: str = "",
    access_format: str = "timed",
    host=None,
) -> Summary:
    """The Summary of `path` and its rotated copies on `host` (None: this machine),
    computed once per process. App log stamps are read as wall-clock times in zone `tz`;
    an access log ("access") is read in nginx `log_format` `access_format`; rotated
    copies are also looked for in the `olddir` the logrotate file names. What is
    remembered between runs is kept per host."""
    key = _key(path, fmt, tz, access_format, host)
    if key not in _MEMO:
        fs = files_of(host)
        cache = host_state(state_dir, host) / "logs" if state_dir is not None else None
        extra = olddirs(logrotate_conf, fs)
        _MEMO[key] = summarize(
            path,
            cache,
            workers=workers,
            fmt=fmt,
            tz=tz,
            olddirs=extra,
            access_format=access_format,
            fs=fs,
        )
    return _MEMO[key][0]


def _key(path: str, fmt: str, tz: str, access_format: str, host=None) -> tuple[str, ...]:
    name = "" if host is None or isinstance(host, LocalHost) else f"remote {host.name}"
    return (name, path, fmt, access_format if fmt == "access" else tz)


def stats(
    path: str, fmt: str = "app", tz: str = "", access_format: str = "timed", host=None
) -> dict:
    return _MEMO.get(_key(path, fmt, tz, access_format, host), (None, {}))[1]


def blind_spots(s: Summary, what: str, now: datetime, records: bool = True) -> list[str]:
    """What a Summary of `what` could not see: files or parts not read, lines that did
    not parse (over 1 %), no line in the expected format at all, stamps in the future."""
    problems = [f"{what}: {note}" for note in s.notes]
    bad = s.unparsed + s.overlong
    if s.lines and 100.0 * bad / s.lines > MAX_UNPARSED_PERCENT:
        sample = f"; e.g. {s.unparsed_sample!r}" if s.unparsed_sample else ""
        problems.append(
            f"{what}: {bad} of {s.lines} lines ({100.0 * bad / s.lines:.1f} %) could not be "
            f"parsed, limit {MAX_UNPARSED_PERCENT:g} %{sample}"
        )
    elif s.lines and records and not s.records:
        problems.append(f"{what}: none of its {s.lines} lines is in the service's log format")
    if s.latest:
        latest = datetime.strptime(s.latest, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        if latest > now + FUTURE_SLACK:
            ahead = (latest - now).total_seconds() / 3600
            problems.append(
                f"{what}: lines stamped up to {ahead:.1f} h ahead of now ({s.latest} UTC); "
                "set service.timezone to the zone the service writes its stamps in"
            )
    return problems


def seen(s: Summary, what: str, now: datetime, records: bool = True) -> Summary:
    """`s`, if it saw the whole log; else a ProbeError naming what it could not see."""
    problems = blind_spots(s, what, now, records)
    if problems:
        raise ProbeError("cannot see the whole log: " + "; ".join(problems))
    return s


def hours_back(end: datetime, hours: int) -> list[str]:
    """UTC hour keys ("YYYY-mm-dd HH") of the `hours` clock hours ending with `end`'s."""
    top = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [(top - timedelta(hours=n)).strftime("%Y-%m-%d %H") for n in range(hours)]


def windows(now: datetime, days: int = 7) -> tuple[list[str], list[list[str]]]:
    """The last 24 clock hours, and each of the `days` 24-hour windows before them."""
    last = hours_back(now, 24)
    earlier = [hours_back(now - timedelta(hours=24 * d), 24) for d in range(1, days + 1)]
    return last, earlier


def _on(host) -> str:
    """ " on app@10.0.0.5" for a remote host, "" for this machine."""
    return "" if host is None or isinstance(host, LocalHost) else f" on {host.name}"


def app_log(cfg, state_dir: Path | None, now: datetime, host=None) -> tuple[Summary, str]:
    """The app log's Summary, whole (else a ProbeError), and its name for messages."""
    p = cfg.paths
    s = view(
        p.app_log,
        state_dir,
        "app",
        tz=cfg.service.timezone,
        logrotate_conf=p.logrotate_conf,
        host=host,
    )
    what = f"app log {p.app_log}{_on(host)}"
    return seen(s, what, now), what


def access_log(cfg, state_dir: Path | None, now: datetime, host=None) -> tuple[Summary, str]:
    """The nginx access log's Summary, whole (else a ProbeError), and its name."""
    p = cfg.paths
    s = view(p.access_log, state_dir, "access", access_format=p.access_log_format, host=host)
    what = f"access log {p.access_log}{_on(host)}"
    return seen(s, what, now, records=False), what


def responses(cfg, state_dir: Path | None, now: datetime, host=None) -> tuple[Summary, str]:
    """Where responses are counted: the access log when there is one (client-side
    truth, nginx's own 499/502/504 included), else the app log."""
    if cfg.paths.access_log:
        return access_log(cfg, state_dir, now, host)
    return app_log(cfg, state_dir, now, host)


def timings(cfg, state_dir: Path | None, now: datetime, host=None) -> tuple[Summary, str]:
    """Where response times come from: the access log when its format has timings,
    else the app log (server side: it leaves out the wait in the event loop), saying so."""
    if cfg.paths.access_log:
        s, what = access_log(cfg, state_dir, now, host)
        if s.latency_source:
            return s, f"{what}, {s.latency_source}"
        app, app_what = app_log(cfg, state_dir, now, host)
        return app, f"{app_what}, server side: the access log's format has no timings"
    s, what = app_log(cfg, state_dir, now, host)
    return s, f"{what}, {s.latency_source}"


def covers(s: Summary, windows_before: list[list[str]]) -> bool:
    """Whether the log reaches back over the earlier windows (anything counted there)."""
    return any(h in s.hours for keys in windows_before for h in keys)
