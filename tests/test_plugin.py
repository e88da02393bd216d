"""The plugin on small suites of its own: cadence rules, the report triple, timeouts."""

from __future__ import annotations

import html as htmlmod
import json
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opscheck.report import label_for, reserve
from tests.conftest import REPO, run_pytest

HEADER = "import time\nimport pytest\n\n"


def make_suite(root: Path, files: dict[str, str], ini_extra: str = "") -> Path:
    """A suite laid out like ours: the real pytest.ini plus the given check files."""
    ini = (REPO / "pytest.ini").read_text()
    if ini_extra:
        ini = re.sub(r"(?m)^timeout = .*$", ini_extra.strip(), ini)
    (root / "pytest.ini").write_text(ini)
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + textwrap.dedent(body))
    return root


GOOD = """
@pytest.mark.daily
def test_fine(evidence):
    '''서비스 정상 실행 확인: a passing check.'''
    evidence.at_most("queue depth", 3, "jobs", 10)
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.critical
def test_broken(evidence):
    '''디스크 사용률 < 90%: a failing check.'''
    evidence.at_most("/ space used", 93.14, "%", 90)
    evidence.verdict()
"""


def html_data(page: str) -> dict:
    """The data pytest-html embeds in its self-contained page."""
    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    assert blob, "no data blob in the HTML report"
    return json.loads(htmlmod.unescape(blob.group(1)))


def reports_of(root: Path, label: str, suffix: str) -> list[Path]:
    return sorted((root / "reports" / label).glob(f"*.{suffix}"))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "def test_nomark():\n    '''x'''\n",
            "test_nomark: a check needs exactly one cadence marker, has none",
        ),
        (
            "@pytest.mark.daily\n@pytest.mark.weekly\ndef test_two():\n    '''x'''\n",
            "test_two: a check needs exactly one cadence marker, has daily, weekly",
        ),
        (
            "@pytest.mark.daily\ndef test_nodoc():\n    pass\n",
            "test_nodoc: a check needs a docstring naming its guide line",
        ),
    ],
)
def test_badly_declared_check_is_a_collection_error(tmp_path, body, expected):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": body})
    proc = run_pytest(["-m", "weekly"], cwd=suite)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert f"checks/daily/test_x.py::{expected}" in proc.stderr


def test_unknown_marker_is_refused(tmp_path):
    body = "@pytest.mark.dayly\ndef test_typo():\n    '''x'''\n"
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": body})
    proc = run_pytest([], cwd=suite)
    assert proc.returncode != 0
    assert "'dayly' not found in `markers` configuration option" in proc.stdout + proc.stderr


def test_check_ids_are_unique_in_the_suite(tmp_path):
    body = "@pytest.mark.daily\ndef test_same():\n    '''x'''\n"
    suite = make_suite(tmp_path, {"checks/daily/test_a.py": body, "checks/weekly/test_b.py": body})
    proc = run_pytest([], cwd=suite)
    assert proc.returncode == 4
    assert "check id 'same' is also defined in" in proc.stderr


def test_report_triple_with_evidence_for_passes_and_failures(tmp_path):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": GOOD})
    proc = run_pytest(["-m", "daily"], cwd=suite)
    assert proc.returncode == 1
    (js,) = reports_of(suite, "daily", "json")
    (html,) = reports_of(suite, "daily", "html")
    (xml,) = reports_of(suite, "daily", "xml")
    assert js.stem == html.stem == xml.stem
    assert str(html) in proc.stdout, "the terminal names the report"

    doc = json.loads(js.read_text())
    assert doc["label"] == "daily" and doc["exit_code"] == 1
    assert doc["suite_version"] == "0.1.0" and doc["host"]
    assert set(doc) >= {"started", "finished", "config", "checks"}
    assert datetime.strptime(doc["started"], "%Y-%m-%dT%H:%M:%SZ")
    fine, broken = doc["checks"]
    assert fine == {
        "id": "fine",
        "nodeid": "checks/daily/test_x.py::test_fine",
        "cadence": "daily",
        "severity": "warning",
        "guide_line": "서비스 정상 실행 확인",
        "outcome": "passed",
        "duration_s": fine["duration_s"],
        "message": "",
        "evidence": [{"name": "queue depth", "value": 3, "unit": "jobs", "limit": 10}],
    }
    assert broken["severity"] == "critical" and broken["outcome"] == "failed"
    assert broken["message"] == "/ space used is 93.1 %, limit 90 %"
    assert broken["evidence"] == [
        {"name": "/ space used", "value": 93.14, "unit": "%", "limit": 90}
    ]

    page = html.read_text()
    assert "<script src=" not in page and '<link rel="stylesheet" href=' not in page
    data = html_data(page)
    assert {"Target", "Config", "Config sha256", "Host", "Suite version"} <= set(
        data["environment"]
    )
    rows = {t[0]["testId"]: t[0]["resultsTableRow"] for t in data["tests"].values()}
    fine_row = " ".join(rows["checks/daily/test_x.py::test_fine"])
    broken_row = " ".join(rows["checks/daily/test_x.py::test_broken"])
    assert "<b>fine</b>" in fine_row and "서비스 정상 실행 확인" in fine_row
    assert "queue depth: 3 jobs (limit 10 jobs)" in fine_row, "evidence of a pass"
    assert "<b>broken</b> (critical)" in broken_row and "디스크 사용률 &lt; 90%" in broken_row
    assert "/ space used: 93.1 % (limit 90 %)" in broken_row, "evidence of a failure"

    junit = xml.read_text()
    assert 'name="check_id" value="broken"' in junit
    assert 'name="evidence" value="/ space used: 93.1 % (limit 90 %)"' in junit


def test_two_runs_in_the_same_second_both_survive(tmp_path):
    now = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
    first, second = reserve(tmp_path, now), reserve(tmp_path, now)
    assert first.json != second.json
    assert first.json.name == "20261126T020000Z.json"
    assert second.json.name == "20261126T020000Z-2.json"
    assert first.json.exists() and second.json.exists()


def test_concurrent_runs_never_overwrite(tmp_path):
    """Runs of one label started together: each either runs (its own complete triple) or
    exits at once with exit code 4 naming the lock (no overlap, issue 12)."""
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": GOOD})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-m", "daily", "-q"],
            cwd=suite,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    codes = [code for code, _ in results]
    assert set(codes) <= {1, 4} and 1 in codes, results
    for code, err in results:
        if code == 4:
            assert "another 'daily' run (pid " in err and "did not start" in err, err
    for suffix in ("json", "html", "xml"):
        assert len(reports_of(suite, "daily", suffix)) == codes.count(1)
    for js in reports_of(suite, "daily", "json"):
        doc = json.loads(js.read_text())
        assert doc["status"] == "finished" and len(doc["checks"]) == 2


def test_hanging_check_times_out_and_the_run_goes_on(tmp_path):
    body = """
    @pytest.mark.daily
    def test_hangs():
        '''API 응답 시간 체크: hangs.'''
        time.sleep(30)


    @pytest.mark.daily
    def test_after():
        '''에러율 확인: runs after the hang.'''
    """
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": body}, "timeout = 1\n")
    proc = run_pytest(["-m", "daily"], cwd=suite, timeout=60)
    (js,) = reports_of(suite, "daily", "json")
    hangs, after = json.loads(js.read_text())["checks"]
    assert hangs["outcome"] == "failed" and "Timeout (>1.0s)" in hangs["message"]
    assert after["outcome"] == "passed"
    assert proc.returncode == 1


def test_crash_skip_setup_error_and_probe_error_are_reported_with_reasons(tmp_path):
    body = """
    @pytest.fixture
    def broken_probe():
        raise OSError("permission denied reading /app/.env")


    @pytest.mark.daily
    def test_crashes():
        '''로그 모니터링: raises.'''
        raise ValueError("unexpected answer")


    @pytest.mark.daily
    def test_skips():
        '''보안: does not apply.'''
        pytest.skip("no https target configured")


    @pytest.mark.daily
    def test_setup_fails(broken_probe):
        '''.env 600: its fixture fails.'''


    @pytest.mark.daily
    def test_probe_cannot_measure():
        '''디스크 사용률 < 90%: its probe gives up.'''
        from opscheck.probes import ProbeError
        raise ProbeError("cannot stat file system /data: Permission denied")
    """
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": body})
    proc = run_pytest(["-m", "daily"], cwd=suite)
    assert proc.returncode == 1
    (js,) = reports_of(suite, "daily", "json")
    crash, skip, setup, probe = json.loads(js.read_text())["checks"]
    assert (crash["outcome"], crash["message"]) == ("failed", "ValueError: unexpected answer")
    assert (skip["outcome"], skip["message"]) == ("skipped", "no https target configured")
    assert setup["outcome"] == "error"
    assert setup["message"] == "setup error: OSError: permission denied reading /app/.env"
    assert probe["outcome"] == "failed"
    assert probe["message"] == "cannot stat file system /data: Permission denied"


def test_label_names_the_marker_expression(tmp_path):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": GOOD})
    run_pytest(["-m", "daily or weekly"], cwd=suite)
    run_pytest([], cwd=suite)
    assert len(reports_of(suite, "daily-or-weekly", "json")) == 1
    assert len(reports_of(suite, "all", "json")) == 1


@pytest.mark.parametrize(
    ("expr", "label"),
    [
        ("daily", "daily"),
        ("daily or weekly", "daily-or-weekly"),
        ("", "all"),
        ("not load and (weekly)", "not-load-and-weekly"),
        ("Daily", "daily"),
    ],
)
def test_label_for(expr, label):
    assert label_for(expr) == label


def test_suite_self_tests_write_no_report(tmp_path):
    """`pytest tests` is not a checklist run: no report, no config needed."""
    body = "def test_plain():\n    assert True\n"
    suite = make_suite(tmp_path, {"tests/test_self.py": body, "checks/daily/test_x.py": GOOD})
    (suite / "opscheck.toml").write_text("[broken\n")
    proc = run_pytest(["tests"], cwd=suite)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (suite / "reports").exists()


def test_plugin_is_inert_outside_an_opscheck_suite(tmp_path):
    """Installed through an entry point, the plugin must not touch other projects' runs."""
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "test_other.py").write_text("def test_x():\n    pass\n")
    proc = run_pytest(["-p", "no:cacheprovider"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "reports").exists()


def test_the_harness_catches_a_process_a_run_leaves_behind(tmp_path):
    """Every run_pytest fails its test when a process of the run outlives it by 3 s (what
    the fault matrix and every other real run rely on for "nothing left behind")."""
    (tmp_path / "test_orphan.py").write_text(
        "import subprocess\n\n\ndef test_orphan():\n"
        "    subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
    )
    with pytest.raises(AssertionError, match=r"alive 3 s after pytest exited: \['sleep"):
        run_pytest(["-p", "no:cacheprovider", "-q", str(tmp_path / "test_orphan.py")])
