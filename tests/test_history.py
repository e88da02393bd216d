"""The history store: real runs write it, on SQLite and on a real PostgreSQL; two writers
at once never corrupt it; a history that cannot be written is a warning, never a crash."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opscheck.evidence import fmt
from opscheck.history import Database, HistoryError, resolve_url, store
from tests.historydb import config, db
from tests.pgcluster import PASSWORD, free_port

MEMORY = ["checks/daily/test_host.py", "-k", "memory_usage"]


def _outputs(run) -> str:
    files = [p.read_text() for p in run.reports_dir.glob("*/*.*") if p.suffix != ".sqlite"]
    return "\n".join([run.stdout, run.stderr, *files])


def test_a_real_run_stores_its_results_and_values(run_checks, tmp_path, history_url):
    run = run_checks(config(tmp_path, history_url), *MEMORY)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["history"]["written"] is True
    assert PASSWORD not in _outputs(run)
    points = db(history_url).call("r", "points", ["memory_usage"])
    assert [(p.name, p.unit, p.limit, p.outcome, p.param) for p in points] == [
        ("memory used", "%", 85.0, "passed", "local")
    ]
    assert points[0].value == run.one("memory_usage")["evidence"][0]["value"]
    assert points[0].started == run.report["started"]
    run2 = run_checks(config(tmp_path, history_url), *MEMORY)
    assert run2.report["history"]["run_id"] == run.report["history"]["run_id"] + 1
    assert len(db(history_url).call("r", "outcomes", "memory_usage")) == 2


def test_the_schema_has_a_version_and_refuses_a_newer_one(history_url):
    engine = db(history_url).engine()
    with engine.begin() as conn:
        assert store.migrate(conn) == store.SCHEMA_VERSION
    with engine.begin() as conn:  # a second time: nothing to do
        store.migrate(conn)
        assert conn.execute(store.schema.select()).all()[-1].version == store.SCHEMA_VERSION
        conn.execute(store.schema.insert().values(version=99, applied="x"))
    with pytest.raises(HistoryError, match="schema version 99, newer than this suite's 1"):
        db(history_url).call("not written", "write_run", {"checks": []}, "s")


WRITER = """
import sys
from pathlib import Path
from opscheck.history import Database
db = Database(sys.argv[1], Path("/nonexistent"), 60)
checks = [
    {"id": f"c{i}", "nodeid": f"n{i}[p]", "outcome": "passed",
     "evidence": [{"name": f"v{j}", "value": i + j, "unit": "ms", "limit": 9} for j in range(3)]}
    for i in range(30)
]
for n in range(int(sys.argv[2])):
    db.call("w", "write_run", {"started": "2026-01-01T00:00:00Z", "label": sys.argv[3],
            "host": "h", "status": "finished", "checks": checks}, f"s{n}")
"""


def test_concurrent_writers_lose_nothing_and_corrupt_nothing(tmp_path, history_url):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), history_url, "15", f"job{i}"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    engine = db(history_url).engine()
    with engine.connect() as conn:
        runs = conn.execute(store.runs.select()).all()
        assert len(runs) == 60
        assert {r.label for r in runs} == {f"job{i}" for i in range(4)}
        n = conn.execute(store.sa.select(store.sa.func.count()).select_from(store.evidence))
        assert n.scalar() == 60 * 90
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def _warned(run, needle: str) -> None:
    """The run's report is whole, and says (JSON, terminal, stderr) history was not written."""
    h = run.report["history"]
    assert h["written"] is False and needle in h["warning"], h
    assert run.report["status"] == "finished" and run.report["checks"]
    assert "warning: history" in run.stdout and "warning: history" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    for suffix in ("html", "xml", "json"):
        assert list(run.reports_dir.glob(f"*/*.{suffix}"))
    json.dumps(run.report)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("sqlite:///{tmp}/a-file/history.sqlite", "File exists"),
        ("not a url at all", "is not a database URL"),
        ("mysql://admin:{pw}@127.0.0.1/h", "history mysql://127.0.0.1/h"),
        ("postgresql://opscheck:{pw}@127.0.0.1:{port}/h", "127.0.0.1"),
    ],
    ids=["unwritable-path", "bad-url", "no-driver", "postgres-down"],
)
def test_an_unwritable_history_is_a_warning_not_a_crash(run_checks, tmp_path, url, needle):
    (tmp_path / "a-file").write_text("")
    url = url.format(tmp=tmp_path, pw=PASSWORD, port=free_port())
    ok = run_checks(config(tmp_path, url), *MEMORY)
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    _warned(ok, needle)
    assert PASSWORD not in _outputs(ok)
    red = run_checks(config(tmp_path, url, "[thresholds]\nmemory_percent = 0"), *MEMORY)
    assert red.exit_code == 1 and red.one("memory_usage")["outcome"] == "failed"
    _warned(red, needle)


def test_a_lock_held_past_the_timeout_is_a_warning(run_checks, tmp_path, history_url):
    database = db(history_url)
    database.call("w", "write_run", {"checks": []}, "first")  # the schema exists
    engine = database.engine()
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            raw = sqlite3.connect(engine.url.database, isolation_level=None)
            raw.execute("BEGIN EXCLUSIVE")
        else:
            conn.exec_driver_sql("LOCK TABLE opscheck_runs IN ACCESS EXCLUSIVE MODE")
        run = run_checks(config(tmp_path, history_url), *MEMORY)
        if conn.dialect.name == "sqlite":
            raw.rollback()
            raw.close()
    assert run.exit_code == 0
    _warned(run, "lock" if "postgresql" in history_url else "database is locked")
    assert PASSWORD not in _outputs(run)


def test_a_relative_sqlite_path_is_taken_from_the_reports_dirs_parent(tmp_path):
    url = resolve_url("sqlite:///reports/history.sqlite", tmp_path)
    assert url.database == str(tmp_path / "reports" / "history.sqlite")
    assert resolve_url("sqlite:////var/h.sqlite", tmp_path).database == "/var/h.sqlite"
    assert resolve_url("postgresql://u:p@h/d", tmp_path).drivername == "postgresql+psycopg"


def test_the_default_url_is_taken_from_the_reports_dirs_parent(run_checks, tmp_path):
    run = run_checks(None, *MEMORY)  # --reports-dir <tmp>/reports-0
    assert run.report["history"]["written"] is True
    assert (tmp_path / "reports" / "history.sqlite").is_file()
    assert run.report["history"]["url"] == f"sqlite:///{tmp_path}/reports/history.sqlite"


def test_a_bad_url_is_one_line_without_the_password():
    with pytest.raises(HistoryError) as exc:
        Database(f"post gres://u:{PASSWORD}@h/d", Path("/"), 1).engine()
    assert PASSWORD not in str(exc.value) and "\n" not in str(exc.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opscheck", "history", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_the_history_command_prints_outcomes_and_values(run_checks, tmp_path, history_url):
    cfg = config(tmp_path, history_url)
    run = run_checks(cfg, *MEMORY)
    value = run.one("memory_usage")["evidence"][0]["value"]
    out = _cli("memory_usage", "--days", "2", "--ops-config", str(cfg))
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[1:3]
    assert header.split() == ["started", "(UTC)", "host", "label", "parameter", "outcome", "values"]
    assert row.startswith(run.report["started"]) and " passed " in row
    assert f"memory used {fmt(value, '%')} (limit 85 %)" in row
    assert PASSWORD not in out.stdout + out.stderr
    empty = _cli("cpu_usage", "--ops-config", str(cfg))
    assert empty.returncode == 1 and empty.stdout == ""
    assert empty.stderr.startswith("cpu_usage: no stored results in the last 30 days")
    unknown = _cli("no_such_check", "--ops-config", str(cfg))
    assert unknown.returncode == 2
    assert unknown.stderr == "unknown check id 'no_such_check': no check in the suite has it\n"


def test_the_history_command_on_a_history_it_cannot_read(tmp_path):
    (tmp_path / "a-file").write_text("")
    cfg = config(tmp_path, f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/h")
    out = _cli("memory_usage", "--ops-config", str(cfg))
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr and PASSWORD not in out.stderr


def test_recent_gives_each_row_its_own_last_runs_oldest_first(history_url):
    """The charts' read: a row absent from some runs still gets its own last n values."""

    def run(i: int, nodeids: list[str]) -> dict:
        checks = [
            {"id": "c", "nodeid": nid, "evidence": [{"name": "v", "value": i, "unit": "%"}]}
            for nid in nodeids
        ]
        return {"label": "daily", "started": f"2026-11-{i:02d}T00:00:00Z", "checks": checks}

    every, odd = "checks/daily/t.py::test_a[local]", "checks/daily/t.py::test_b[local]"
    h = db(history_url)
    for i in range(1, 8):
        h.call("w", "write_run", run(i, [every, odd] if i % 2 else [every]), f"s{i}")
    got = h.call("r", "recent", [every, odd, "checks/daily/t.py::test_never"], 3)
    assert got == {every: {"v": [5.0, 6.0, 7.0]}, odd: {"v": [3.0, 5.0, 7.0]}}
