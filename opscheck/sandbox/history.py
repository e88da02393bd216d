"""The sandbox's history: four weeks of daily runs as a deployment that has run the suite
from cron keeps them (response times, memory and disk use), and this quarter's restore
drill, stored through the suite's own writer. The trend checks read it; the faults
`latency-regression` and `disk-filling` store other values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opscheck.history import Database
from opscheck.probes.history import quarter_start

DAYS = 28
P95_MS, MEAN_MS = 1400.0, 900.0  # about what the replica's logs give
MEMORY, DISK, INODES = 40.0, 45.0, 5.0  # %; medians absorb this machine's own runs


def path(root: Path) -> Path:
    return root / "history" / "history.sqlite"


def url(root: Path) -> str:
    return f"sqlite:///{path(root)}"


def seed(root: Path, faults: tuple[str, ...], now: datetime | None = None) -> None:
    """A fresh history of `DAYS` daily runs and one monthly drill (faults change values)."""
    now = now or datetime.now(UTC)
    target = path(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    for old in target.parent.glob("history.sqlite*"):
        old.unlink()
    db = Database(url(root), root, 10)
    try:
        for day in range(DAYS, 0, -1):
            started = now - timedelta(days=day)
            db.call("seeding", "write_run", _daily(started, day, faults), _stem(started))
        drill = quarter_start(now, None)
        drill = drill + (now - drill) / 2  # this quarter, whatever today is
        db.call("seeding", "write_run", _monthly(drill.astimezone(UTC)), _stem(drill))
    finally:
        db.close()


def _stem(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _stamp(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _daily(started: datetime, days_ago: int, faults: tuple[str, ...]) -> dict[str, Any]:
    p95 = P95_MS * (1.3 if "latency-regression" in faults and days_ago <= 7 else 1.0)
    disk = DISK + (1.0 * (DAYS - days_ago) if "disk-filling" in faults else 0.0)
    checks = [
        _check("p95_response_time", "daily/test_logs.py", "", "p95 response time", p95, "ms"),
        _check("avg_response_time", "daily/test_logs.py", "", "mean response time", MEAN_MS, "ms"),
        _check("memory_usage", "daily/test_host.py", "local", "memory used", MEMORY, "%"),
        _check("disk_usage", "daily/test_host.py", "local-/", "/ space used", disk, "%"),
    ]
    checks[-1]["evidence"].append(
        {"name": "/ inodes used", "value": INODES, "unit": "%", "limit": None}
    )
    return _run("daily", started, checks)


def _monthly(started: datetime) -> dict[str, Any]:
    check = _check("restore_drill", "monthly/test_restore.py", "", "restore time", 95.0, "s")
    check["evidence"][0]["limit"] = 4 * 3600
    return _run("monthly", started, [check])


def _check(
    check_id: str, module: str, param: str, name: str, value: float, unit: str
) -> dict[str, Any]:
    nodeid = f"checks/{module}::test_{check_id}" + (f"[{param}]" if param else "")
    return {
        "id": check_id,
        "nodeid": nodeid,
        "cadence": module.split("/")[0],
        "severity": "warning",
        "guide_line": "",
        "outcome": "passed",
        "duration_s": 0.1,
        "message": "",
        "evidence": [{"name": name, "value": value, "unit": unit, "limit": None}],
    }


def _run(label: str, started: datetime, checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "suite_version": "sandbox",
        "label": label,
        "status": "finished",
        "started": _stamp(started),
        "finished": _stamp(started),
        "host": "sandbox",
        "exit_code": 0,
        "checks": checks,
    }
