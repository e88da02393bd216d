"""History fixtures: a database per backend (SQLite file, or a fresh database in the
private PostgreSQL cluster), a config pointing at it, and seeding through the real writer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opscheck.history import Database
from tests.pgcluster import pg_cluster  # noqa: F401  (the session fixture, for conftest)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.sqlite"
    return request.getfixturevalue("pg_cluster").new_database()


def config(tmp_path: Path, url: str, extra: str = "") -> Path:
    """An opscheck.toml with `[history] url` and `extra` (TOML) after it."""
    path = tmp_path / "opscheck.toml"
    path.write_text(f'[history]\nurl = "{url}"\ntimeout_s = 2\n{extra}\n')
    return path


_OPENED: list[Database] = []


def db(url: str) -> Database:
    """A Database on `url`, closed after the test (`close_databases`)."""
    database = Database(url, Path("/nonexistent"), 10)
    _OPENED.append(database)
    return database


@pytest.fixture(autouse=True)
def close_databases() -> Iterator[None]:
    """Give back every test's pooled connections: a PostgreSQL connection left to the
    garbage collector warns in whichever test comes next."""
    yield
    while _OPENED:
        _OPENED.pop().close()


def stamp(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check(
    check_id: str, param: str, outcome: str, evidence: list[tuple[str, Any, str, Any]]
) -> dict[str, Any]:
    nodeid = f"checks/x.py::test_{check_id}" + (f"[{param}]" if param else "")
    return {
        "id": check_id,
        "nodeid": nodeid,
        "cadence": "daily",
        "severity": "warning",
        "guide_line": "",
        "outcome": outcome,
        "duration_s": 0.1,
        "message": "",
        "evidence": [{"name": n, "value": v, "unit": u, "limit": lim} for n, v, u, lim in evidence],
    }


def write(url: str, started: datetime, checks: list[dict[str, Any]], label: str = "daily") -> int:
    """One run stored through the real writer, as if it had run at `started`."""
    doc = {
        "suite_version": "test",
        "label": label,
        "status": "finished",
        "started": stamp(started),
        "finished": stamp(started),
        "host": "testhost",
        "exit_code": 0,
        "checks": checks,
    }
    return db(url).call("not written", "write_run", doc, started.strftime("%Y%m%dT%H%M%SZ"))


def days_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=n)
