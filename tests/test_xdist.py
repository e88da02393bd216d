"""`pytest -m daily -n 4` (pytest-xdist) against real sandboxes: the same checks, outcomes,
messages and evidence as the run without xdist, and one run's worth of output (one HTML,
XML and JSON, one history row, one archive entry). Before: every worker took the run
lock, so every worker but the first stopped with a usage error and the reports said
"no tests ran", exit 0."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
import tomllib
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import REPO, Run, in_one_clock_hour, run_pytest
from tests.test_interrupts import Started, triple
from tests.test_plugin import html_data, make_suite

DAILY = ["-m", "daily"]


def _shape(text: str) -> str:
    """A message without the values that change from run to run (cpu %, ms, ages)."""
    return re.sub(r"\d+(\.\d+)?", "N", text)


def _rows(run: Run) -> list[tuple[Any, ...]]:
    """What must not depend on xdist: each row's check, outcome, message, severity and
    evidence names, units and limits, in collection order."""
    return [
        (
            c["nodeid"],
            c["id"],
            c["cadence"],
            c["outcome"],
            _shape(c["message"]),
            c["severity"],
            [(e["name"], e["unit"], e["limit"]) for e in c["evidence"]],
        )
        for c in run.report["checks"]
    ]


def _one_triple(run: Run) -> dict[str, Path]:
    found = {p.suffix: p for p in run.reports_dir.glob("*/*.*") if not p.name.startswith(".")}
    assert sorted(found) == [".html", ".json", ".xml"], sorted(run.reports_dir.rglob("*"))
    return found


def _history_runs(config: Path) -> int:
    url = tomllib.loads(config.read_text())["history"]["url"]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return db.execute("SELECT count(*) FROM opscheck_runs").fetchone()[0]


def _archived(run: Run) -> list[dict[str, Any]]:
    lines = (run.reports_dir / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _html_rows(path: Path) -> dict[str, list[str]]:
    """nodeid -> the Check and Evidence cells of its rows in the HTML report (a chart's
    drawing aside: the serial run added a point to the history)."""
    rows = {}
    for nodeid, results in html_data(path.read_text())["tests"].items():
        cells = [c for r in results for c in r["resultsTableRow"] if OURS.match(c)]
        rows[nodeid] = [_shape(re.sub(r"<svg.*?</svg>", "<svg/>", c, flags=re.S)) for c in cells]
    return rows


OURS = re.compile(r'<td class="col-(check|evidence)">')


def _html_extras(path: Path) -> dict[str, list[str]]:
    """nodeid -> the kinds of its rows' extras (attached HTML, links)."""
    tests = html_data(path.read_text())["tests"]
    return {n: [e["format_type"] for r in rows for e in r["extras"]] for n, rows in tests.items()}


def _xml_props(path: Path) -> list[str]:
    return sorted(
        _shape(p) for p in re.findall(r'<property name="[^"]+" value="[^"]*"', path.read_text())
    )


def test_healthy_daily_run_under_xdist_equals_the_serial_run(sandbox, run_checks):
    def both():
        serial = run_checks(sandbox.config, *DAILY)
        before = _history_runs(sandbox.config)
        return serial, before, run_checks(sandbox.config, *DAILY, "-n", "4")

    serial, before, parallel = in_one_clock_hour(both)
    assert serial.exit_code == parallel.exit_code == 0, parallel.stdout + parallel.stderr
    assert _rows(parallel) == _rows(serial)
    assert len(serial.report["checks"]) >= 15
    files = _one_triple(parallel)
    assert _history_runs(sandbox.config) == before + 1
    assert parallel.report["history"]["written"] is True
    assert [e["label"] for e in _archived(parallel)] == ["daily"]
    assert "this run did not start" not in parallel.stdout + parallel.stderr
    serial_files = _one_triple(serial)
    rows = _html_rows(files[".html"])
    assert rows == _html_rows(serial_files[".html"])
    cells = [cell for cells in rows.values() for cell in cells]
    assert len(cells) == 2 * len(rows) and any("<svg/>" in c for c in cells)  # with charts
    assert _xml_props(files[".xml"]) == _xml_props(serial_files[".xml"])
    extras = _html_extras(files[".html"])
    assert extras == _html_extras(serial_files[".html"])
    assert any(extras.values())  # the log checks' attached tables


def test_faulted_daily_run_under_xdist_fails_the_same_checks(sandbox_factory, run_checks):
    sb = sandbox_factory("degraded", "stale-backup")
    serial = run_checks(sb.config, *DAILY)
    parallel = run_checks(sb.config, *DAILY, "-n", "4")
    assert serial.exit_code == parallel.exit_code == 1, parallel.stdout + parallel.stderr
    assert serial.failed_ids() == {"health_components_healthy", "backup_fresh"}
    assert parallel.failed_ids() == serial.failed_ids()
    assert _rows(parallel) == _rows(serial)
    degraded = parallel.one("health_components_healthy")
    assert "status is 'degraded', expected 'healthy'" in degraded["message"]
    assert degraded["severity"] == "critical"
    _one_triple(parallel)


SLEEPERS = """
import pathlib
import subprocess

from opscheck import lifecycle


@pytest.mark.daily
def test_first(evidence):
    '''서비스 정상 실행 확인: passes.'''
    evidence.at_most("queue depth", 1, "jobs", 2)
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.parametrize("n", [1, 2])
def test_sleeps(n):
    '''에러율 확인: a child process and a scratch dir (as the restore drill has), until
    it is interrupted.'''
    tree = pathlib.Path("{scratch}") / f"s{{n}}"
    tree.mkdir()
    with lifecycle.scratch(tree):
        try:
            child = subprocess.Popen(["sleep", "120"])
            lifecycle.register(child.pid, "sleeper")
            (tree / "started").write_text("1")
            child.wait()
        finally:
            lifecycle.remove_tree(tree)


@pytest.mark.daily
@pytest.mark.parametrize("n", range(4))
def test_after(n):
    '''API 응답 시간 체크: never reached.'''
"""


def test_sigterm_under_xdist_finishes_the_triple_and_stops_the_workers(tmp_path):
    """Both workers mid-check, each with a child process and a scratch dir: exit 2, the
    two checks in progress errors, the others not run, one triple, nothing left."""
    scratch, suite = tmp_path / "scratch", tmp_path / "suite"
    scratch.mkdir()
    suite.mkdir()
    make_suite(suite, {"checks/daily/test_x.py": SLEEPERS.format(scratch=scratch)})
    run = Started([*DAILY, "-n", "2"], suite)
    run.wait_for("both sleeping checks", lambda: len(list(scratch.glob("*/started"))) == 2)
    code, out, err = run.signal(signal.SIGTERM)
    assert code == 2, (out, err)
    doc, html, xml = triple(suite / "reports")
    assert doc["status"] == "interrupted" and doc["exit_code"] == 2
    rows = {c["nodeid"].split("::")[1]: c for c in doc["checks"]}
    assert list(rows) == [
        "test_first",
        "test_sleeps[1]",
        "test_sleeps[2]",
        *(f"test_after[{n}]" for n in range(4)),
    ]
    assert rows["test_first"]["outcome"] == "passed"
    for n in (1, 2):
        assert rows[f"test_sleeps[{n}]"]["outcome"] == "error", rows
        assert rows[f"test_sleeps[{n}]"]["message"] == "interrupted (SIGTERM)"
    for n in range(4):
        assert rows[f"test_after[{n}]"]["message"] == (
            "not run: the run was interrupted (SIGTERM) before it"
        )
    junit = xml.read_text()
    assert junit.count("<testcase ") == 3 and 'errors="2"' in junit
    page = html.read_text()
    assert "Interrupted (SIGTERM)" in page and "4 checks not run" in page
    assert list(scratch.iterdir()) == []  # each worker removed its own
    assert run.survivors() == []


def test_sigterm_mid_check_under_xdist_against_a_replica(sandbox_factory, tmp_path):
    """A replica that never answers in time: SIGTERM while a worker waits on it."""
    sb = sandbox_factory("slow", timeout_s=30.0)
    port = int(tomllib.loads(sb.config.read_text())["service"]["base_url"].rsplit(":", 1)[1])
    reports = tmp_path / "reports"
    cli = ["--reports-dir", str(reports), "--ops-config", str(sb.config), *DAILY, "-n", "2"]
    run = Started(cli, REPO)
    run.wait_for("a worker waiting on the replica", lambda: _connected(run, port), timeout=180)
    code, out, err = run.signal(signal.SIGTERM)
    assert code == 2, (out, err)
    doc, _, _ = triple(reports)
    outcomes = [c["outcome"] for c in doc["checks"]]
    assert "error" in outcomes and len(outcomes) >= 15, doc["checks"]
    interrupted = [c for c in doc["checks"] if c["message"] == "interrupted (SIGTERM)"]
    assert interrupted and all(c["outcome"] == "error" for c in interrupted)
    assert run.survivors() == []


def _connected(run: Started, port: int) -> bool:
    """A process of the run holds a connection to the replica's port."""
    for proc in run.descendants():
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.raddr and c.raddr.port == port for c in conns):
            return True
    time.sleep(0.1)
    return False


LEAKY = """

@pytest.mark.daily
def test_leaky():
    '''서비스 정상 실행 확인: fails naming a secret of the .env.'''
    assert "Cnry9Env8Key7qXw" == "other", "upstream refused key=Cnry9Env8Key7qXw"
"""


def test_waivers_and_masked_failures_under_xdist_as_without(tmp_path):
    """A waiver applied on one worker, an expired one on another, one matching nothing,
    a failure whose text was masked: the JSON's waivers and rows, the XML's messages and
    the terminal's notes are the serial run's. Before: under xdist the expired waiver's
    and the masked failure's messages began with the worker's "[gw0] linux -- Python"
    line, and the masked one was the whole traceback instead of its assertion."""
    from tests.test_waivers import CHECKS, DATA_WAIVER

    checks = CHECKS + CHECKS.replace("test_fine", "test_fine_b").replace("test_disk", "test_disk_b")
    expired = DATA_WAIVER.replace('"disk"', '"disk_b"').replace("2099-01-31", "2020-01-31")
    docs, notes, messages = [], [], []
    for n, extra in enumerate([[], ["-n", "2"]]):
        suite = tmp_path / f"suite-{n}"
        suite.mkdir()
        make_suite(suite, {"checks/daily/test_x.py": checks + LEAKY})
        (suite / "waivers.toml").write_text(
            DATA_WAIVER + expired + DATA_WAIVER.replace('"disk"', '"none"')
        )
        (suite / ".env").write_text("PAYMENT_API_KEY=Cnry9Env8Key7qXw\n")
        (suite / "opscheck.toml").write_text(f'[paths]\nenv_file = "{suite / ".env"}"\n')
        proc = run_pytest([*DAILY, *extra], cwd=suite)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        doc, _, xml = triple(suite / "reports")
        docs.append(doc)
        terminal = proc.stdout.replace(str(suite), "SUITE")
        notes.append(sorted(re.findall(r"opscheck: waiver .*", terminal)))
        messages.append(sorted(re.findall(r'message="[^"]*"', xml.read_text())))
        assert "Cnry9Env8Key7qXw" not in proc.stdout + proc.stderr + xml.read_text()
    serial, parallel = docs
    assert [w["status"] for w in serial["waivers"]] == ["applied", "expired", "unmatched"]
    assert parallel["waivers"] == serial["waivers"]
    outcomes = [(c["nodeid"], c["outcome"], c["message"]) for c in serial["checks"]]
    assert outcomes == [(c["nodeid"], c["outcome"], c["message"]) for c in parallel["checks"]]
    leaky = next(c for c in parallel["checks"] if c["id"] == "leaky")
    assert leaky["message"].startswith("AssertionError: upstream refused key=[redacted]")
    assert messages[0] == messages[1]
    assert notes[0] == notes[1] and len(notes[0]) == 2


def test_maxfail_under_xdist_exits_1_as_without(tmp_path):
    """`-x`: pytest alone stops with exit 1; before, xdist's own stop made it exit 2,
    the code of a run interrupted by a signal."""
    from tests.test_plugin import GOOD

    codes = []
    for n, extra in enumerate([[], ["-n", "2"]]):
        suite = tmp_path / f"suite-{n}"
        suite.mkdir()
        make_suite(suite, {"checks/daily/test_x.py": GOOD})
        proc = run_pytest([*DAILY, "-x", *extra], cwd=suite)
        doc = triple(suite / "reports")[0]
        assert "stopping after 1 failures" in proc.stdout, proc.stdout + proc.stderr
        assert doc["status"] == "finished" and {c["id"] for c in doc["checks"]} >= {"broken"}
        codes.append((proc.returncode, doc["exit_code"]))
    assert codes == [(1, 1), (1, 1)]


TWO_CADENCES = """
@pytest.mark.daily
@pytest.mark.weekly
def test_two():
    '''서비스 정상 실행 확인: two cadences.'''


@pytest.mark.daily
def test_fine():
    '''서비스 정상 실행 확인: fine.'''
"""

BAD_IMPORT = """
import no_such_module_here


@pytest.mark.daily
def test_unreachable():
    '''서비스 정상 실행 확인: its file does not import.'''
"""

FINE = """
@pytest.mark.daily
def test_fine():
    '''서비스 정상 실행 확인: fine.'''
"""


def test_collection_stops_under_xdist_as_without(tmp_path):
    """A check with two cadences: exit 4 naming it; a check file that does not import:
    exit 2, nothing run. Before, under xdist: exit 3 (an INTERNALERROR of xdist's
    scheduler), and exit 1 with the other files' checks run."""
    cases = {
        "usage": ({"checks/daily/test_x.py": TWO_CADENCES}, 4),
        "import": ({"checks/daily/test_a.py": BAD_IMPORT, "checks/daily/test_b.py": FINE}, 2),
    }
    for name, (files, code) in cases.items():
        runs = []
        for n, extra in enumerate([[], ["-n", "2"]]):
            suite = tmp_path / f"{name}-{n}"
            suite.mkdir()
            make_suite(suite, files)
            proc = run_pytest([*DAILY, *extra], cwd=suite)
            doc = triple(suite / "reports")[0]
            rows = [(c["nodeid"], c["outcome"], c["message"]) for c in doc["checks"]]
            runs.append((proc.returncode, doc["exit_code"], rows))
            assert "INTERNALERROR" not in proc.stdout + proc.stderr
            if name == "usage":
                assert "test_two: a check needs exactly one cadence marker" in proc.stderr
            else:
                assert "Interrupted: 1 error during collection" in proc.stdout
        assert runs[0] == runs[1] and runs[0][:2] == (code, code), runs
