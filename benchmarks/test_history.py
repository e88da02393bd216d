"""What the history costs: the write (and the charts' reads) a daily run adds, and a
trend query over two years of daily runs, on SQLite and on a real PostgreSQL.

A daily run here is 30 checks with 3 numeric values each, stored through the real
writer into a database that already holds 2 years (730) of such runs; the overhead
is what a run pays: open the database, check the schema, one transaction, and the 30
`recent` reads for the rows' charts. Goals: under 50 ms a run; a trend query over the
2 years under 100 ms. Run: `python -m pytest benchmarks/test_history.py --benchmark-only`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opscheck.history import CHART_RUNS, Database
from opscheck.probes import history as hist
from tests.pgcluster import pg_cluster  # noqa: F401  (session fixture)

CHECKS, VALUES, DAYS = 30, 3, 730


def doc(started: datetime, run: int) -> dict[str, Any]:
    checks = [
        {
            "id": "p95_response_time" if i == 0 else "disk_usage" if i == 1 else f"check_{i}",
            "nodeid": f"checks/daily/test_x.py::test_check_{i}[local]",
            "cadence": "daily",
            "severity": "warning",
            "outcome": "passed",
            "duration_s": 0.1,
            "message": "",
            "evidence": [
                {
                    "name": f"value {j}",
                    "value": 40 + (run * 7 + j) % 13,
                    "unit": "ms" if i == 0 else "%",
                    "limit": 90,
                }
                for j in range(VALUES)
            ],
        }
        for i in range(CHECKS)
    ]
    stamp = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "label": "daily",
        "host": "bench",
        "status": "finished",
        "started": stamp,
        "finished": stamp,
        "exit_code": 0,
        "suite_version": "bench",
        "checks": checks,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def full(request, tmp_path_factory) -> tuple[str, datetime]:
    """A database holding 2 years of daily runs; (its URL, the newest run's time)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('bench')}/history.sqlite"
    else:
        url = request.getfixturevalue("pg_cluster").new_database()
    db = Database(url, Path("/"), 30)
    now = datetime.now(UTC)
    for day in range(DAYS, 0, -1):
        db.call("seeding", "write_run", doc(now - timedelta(days=day), day), f"s{day}")
    if request.param == "postgresql":  # as autovacuum leaves a database two years old
        with db.engine().connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    db.close()
    return url, now


def test_daily_run_write(benchmark, full):
    """One run's history write: a new Database, schema check, one transaction."""
    url, now = full
    n = iter(range(10**6))

    def write() -> None:
        db = Database(url, Path("/"), 30)
        db.call("w", "write_run", doc(now, next(n)), "bench")
        db.close()

    benchmark.pedantic(write, rounds=20, warmup_rounds=2)
    assert benchmark.stats["median"] < 0.050  # PostgreSQL: ~15 ms of it is the new connection


def test_daily_run_write_and_chart_reads(benchmark, full):
    """The write plus the 30 rows' chart reads (the last 29 runs of each row)."""
    url, now = full
    n = iter(range(10**6))

    def run() -> None:
        db = Database(url, Path("/"), 30)
        nodeids = [f"checks/daily/test_x.py::test_check_{i}[local]" for i in range(CHECKS)]
        db.call("r", "recent", nodeids, CHART_RUNS - 1)
        db.call("w", "write_run", doc(now, next(n)), "bench")
        db.close()

    benchmark.pedantic(run, rounds=10, warmup_rounds=1)
    if url.startswith("sqlite"):  # PostgreSQL: measured and reported (about 75 ms here)
        assert benchmark.stats["median"] < 0.050


def test_trend_query_over_two_years(benchmark, full):
    """Every stored value of one check over the 2 years (730 runs x 3 values)."""
    url, now = full
    db = Database(url, Path("/"), 30)

    def query() -> list:
        return hist.series(db, ["disk_usage"], "%", now - timedelta(days=DAYS + 1), now)

    found = benchmark.pedantic(query, rounds=20, warmup_rounds=2)
    assert sum(len(s.values) for s in found) >= DAYS * VALUES
    assert benchmark.stats["median"] < 0.100


def test_weekly_trend_window(benchmark, full):
    """latency_trend's read: 14 days of one check out of the 2 years."""
    url, now = full
    db = Database(url, Path("/"), 30)
    found = benchmark.pedantic(
        lambda: hist.series(db, ["p95_response_time"], "ms", now - timedelta(days=14), now),
        rounds=20,
        warmup_rounds=2,
    )
    assert found
