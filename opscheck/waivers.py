"""Waivers: a failure accepted for a while, with a reason, an owner and an expiry.

`waivers.toml` (`paths.waivers`; default: `waivers.toml` beside the config file) holds
`[[waiver]]` tables: `check` (id), optional `param` (the check's parameter id, e.g. a
host or a mount; a glob), `reason`, `owner`, `expires`. `expires` is a TOML date (the
waiver holds to the end of that day in `service.timezone`, UTC when unset) or a date-time
with an explicit offset; a date-time without one is refused, as its moment is ambiguous.

A failing call of a matched check is reported as `waived` (pytest's xfail underneath, so
the exit code is 0 when nothing else failed); a pass stays a pass; an expired waiver
leaves the failure a failure and says since when; a waiver matching no collected check
is reported in the terminal summary and the JSON.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from opscheck.config import Loaded

KEYS = {"check", "param", "reason", "owner", "expires"}
REQUIRED = ("check", "reason", "owner", "expires")
NAME = "waivers.toml"


@dataclass(eq=False)
class Waiver:
    check: str
    param: str | None
    reason: str
    owner: str
    expires: datetime  # aware
    line: int
    matched: int = 0  # collected checks it matches
    applied: int = 0  # failures it waived
    expired_hits: int = 0  # failures it no longer waives

    def matches(self, check_id: str, param: str) -> bool:
        if check_id != self.check:
            return False
        return self.param is None or fnmatch.fnmatchcase(param, self.param)

    def expiry_text(self) -> str:
        return self.expires.isoformat(sep=" ", timespec="seconds")

    def as_dict(self, now: datetime) -> dict[str, Any]:
        if now >= self.expires:
            status = "expired"
        elif self.applied:
            status = "applied"
        elif self.matched:
            status = "matched"  # the check ran and did not fail
        else:
            status = "unmatched"
        return {
            "check": self.check,
            "param": self.param,
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires.isoformat(timespec="seconds"),
            "status": status,
            "waived": self.applied,
        }


def default_path(loaded: Loaded, root: Path) -> Path:
    """`paths.waivers`, else waivers.toml beside the config file (or in the rootdir)."""
    configured = loaded.config.paths.waivers
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else root / path
    return (loaded.path.parent if loaded.path else root) / NAME


def _expiry(value: Any, zone: ZoneInfo | Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a date-time needs an offset (e.g. +09:00), or give a date")
        return value
    if isinstance(value, date):
        end = datetime.combine(value + timedelta(days=1), time(0), tzinfo=zone)
        return end - timedelta(microseconds=1)
    raise ValueError(
        f"a date (2026-12-31) or a date-time with offset, got a {type(value).__name__}"
    )


def parse(text: str, source: Path, zone: Any) -> list[Waiver]:
    """The waivers of a file's text; a ValueError names the file, line and key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: invalid TOML: {exc}") from None
    extra = [k for k in doc if k != "waiver"]
    if extra:
        raise ValueError(f"{source}: unknown top-level key {extra[0]!r} (expected [[waiver]])")
    tables = doc.get("waiver", [])
    if not isinstance(tables, list):
        raise ValueError(f"{source}: 'waiver' must be an array of tables ([[waiver]])")
    lines = [
        n for n, ln in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[\s*waiver\s*\]\]", ln)
    ]
    return [_one(t, source, lines[i] if i < len(lines) else 0, zone) for i, t in enumerate(tables)]


def _one(table: dict[str, Any], source: Path, line: int, zone: Any) -> Waiver:
    where = f"{source} line {line} ([[waiver]])"
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    for key in REQUIRED:
        if key not in table:
            raise ValueError(f"{where}: {key}: missing")
    for key in ("check", "param", "reason", "owner"):
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ValueError(f"{where}: {key}: must be a non-empty string")
    try:
        expires = _expiry(table["expires"], zone)
    except ValueError as exc:
        raise ValueError(f"{where}: expires: {exc}") from None
    return Waiver(
        table["check"], table.get("param"), table["reason"], table["owner"], expires, line
    )


def load(loaded: Loaded, root: Path) -> Waivers | None:
    """The run's waivers (None without a waivers file); a bad file is one usage error."""
    path = default_path(loaded, root)
    if not path.exists():
        if loaded.config.paths.waivers:
            raise pytest.UsageError(f"waivers file {path} (paths.waivers) does not exist")
        return None
    tz = loaded.config.service.timezone
    zone = ZoneInfo(tz) if tz else UTC
    try:
        text = path.read_text(encoding="utf-8")
        return Waivers(path, parse(text, path, zone))
    except (OSError, UnicodeDecodeError) as exc:
        raise pytest.UsageError(f"cannot read waivers file {path}: {exc}") from None
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@dataclass(eq=False)
class Waivers:
    """The run's waivers, registered as a plugin: it applies them to each call's report."""

    path: Path
    items: list[Waiver]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def find(self, check_id: str, param: str) -> Waiver | None:
        """The matching waiver that lasts longest (an unexpired one first)."""
        found = [w for w in self.items if w.matches(check_id, param)]
        return max(found, key=lambda w: w.expires, default=None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Before deselection: which waivers match a check of the suite as collected."""
        from opscheck.report import check_meta, is_check

        for item in items:
            if is_check(item):
                for w in self.items:
                    w.matched += w.matches(check_meta(item).id, _param(item))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        if report.when != "call" or not report.failed or hasattr(report, "wasxfail"):
            return
        from opscheck.report import _message, check_meta, is_check

        if not is_check(item):
            return
        waiver = self.find(check_meta(item).id, _param(item))
        if waiver is None:
            return
        if self.now >= waiver.expires:
            waiver.expired_hits += 1
            days = (self.now - waiver.expires).days
            ago = "less than a day" if days < 1 else f"{days} day{'s' if days > 1 else ''}"
            report.longrepr = (
                f"{_message(report)} [waiver expired: no longer waived since "
                f"{waiver.expiry_text()} ({ago} ago); owner {waiver.owner}: {waiver.reason}]"
            )
            return
        waiver.applied += 1
        report.outcome = "skipped"
        report.wasxfail = (  # type: ignore[attr-defined]
            f"waived until {waiver.expiry_text()} (owner {waiver.owner}): {waiver.reason}; "
            f"the failure: {_message(report)}"
        )
        report.opscheck_waiver = waiver.as_dict(self.now)  # type: ignore[attr-defined]

    def pytest_report_teststatus(self, report: pytest.TestReport):
        if getattr(report, "opscheck_waiver", None) and report.when == "call":
            return "waived", "w", "WAIVED"
        return None

    def summary(self) -> list[dict[str, Any]]:
        return [w.as_dict(self.now) for w in self.items]

    def notes(self) -> list[str]:
        """Lines for the terminal: waivers that match nothing, waivers that expired."""
        out = []
        for w in self.items:
            what = w.check + (f"[{w.param}]" if w.param else "")
            if not w.matched:
                out.append(
                    f"waiver {what} ({self.path} line {w.line}) matches no check collected "
                    "in this run"
                )
            if self.now >= w.expires:
                out.append(f"waiver {what} ({self.path} line {w.line}) expired {w.expiry_text()}")
        return out

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for line in self.notes():
            terminalreporter.write_line(f"opscheck: {line}", yellow=True)


def _param(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else ""
