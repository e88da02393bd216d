"""The service's logs, summarised once per run: app log and nginx access log.

`view(path, ...)` returns the merged Summary of a log and its rotated siblings
(cached on disk by content, so already-read files are not read again); windows of
time are lists of UTC hour keys built by `hours_back` (a local day's 24 h is 24 UTC
hours, so a DST fall-back hour is not counted twice).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from opscheck.probes.logs.files import summarize
from opscheck.probes.logs.summary import Hist, Hour, Summary

__all__ = ["Hist", "Hour", "Summary", "hours_back", "view", "windows"]

_MEMO: dict[tuple[str, str, str], tuple[Summary, dict]] = {}


def view(
    path: str,
    state_dir: Path | None,
    fmt: str = "app",
    workers: int = 2,
    access_format: str = "timed",
) -> Summary:
    """The Summary of `path` and its rotated copies, computed once per process; an
    access log ("access") is read in nginx `log_format` `access_format`."""
    key = (path, fmt, access_format if fmt == "access" else "")
    if key not in _MEMO:
        cache = state_dir / "logs" if state_dir is not None else None
        _MEMO[key] = summarize(path, cache, workers=workers, fmt=fmt, access_format=access_format)
    return _MEMO[key][0]


def traffic(
    app_log: str, access_log: str, state_dir: Path | None, access_format: str = "timed"
) -> tuple[Summary, str]:
    """Where responses are counted: the access log when there is one (client-side
    truth, nginx's own 502/504 included), else the app log; and which it was."""
    if access_log:
        summary = view(access_log, state_dir, "access", access_format=access_format)
        return summary, f"access log {access_log}"
    return view(app_log, state_dir, "app"), f"app log {app_log}"


def stats(path: str, fmt: str = "app", access_format: str = "timed") -> dict:
    return _MEMO.get((path, fmt, access_format if fmt == "access" else ""), (None, {}))[1]


def hours_back(end: datetime, hours: int, tz: tzinfo | None = None) -> list[str]:
    """UTC hour keys ("YYYY-mm-dd HH") of the `hours` clock hours ending with `end`'s.
    (`tz` is accepted for callers that pass the service's zone; keys are UTC whatever it is.)"""
    top = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [(top - timedelta(hours=n)).strftime("%Y-%m-%d %H") for n in range(hours)]


def windows(now: datetime, tz: tzinfo | None, days: int = 7) -> tuple[list[str], list[list[str]]]:
    """The last 24 clock hours, and each of the `days` 24-hour windows before them."""
    last = hours_back(now, 24, tz)
    earlier = [hours_back(now - timedelta(hours=24 * d), 24, tz) for d in range(1, days + 1)]
    return last, earlier
