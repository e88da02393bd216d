"""The suite's own files (issue 12): reports dir full mid-run or unusable at start, the
state dir unusable, the scratch dir unusable, two runs of one label at once. Real tmpfs
mounts (full, read-only), real files in the way, real concurrent pytest processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_pytest
from tests.test_interrupts import SLEEPER, Started, by_id, triple
from tests.test_plugin import GOOD, make_suite

FILLER = """
@pytest.mark.daily
def test_fills_the_reports_disk():
    '''디스크 사용률 < 90%: fills the reports dir's file system, leaving LEAVE bytes.'''
    import os, pathlib

    reports = pathlib.Path(os.environ["FILL_DIR"])
    for js in reports.glob("*/*.json"):
        if os.environ.get("XML_IN_THE_WAY"):  # a dir where junitxml will write
            js.with_suffix(".xml").mkdir()
    st = os.statvfs(reports)
    free = st.f_bavail * st.f_frsize - int(os.environ["LEAVE"])
    with open(reports / "filler", "wb") as f:
        try:
            f.write(bytes(max(0, free)))
        except OSError:
            pass


@pytest.mark.daily
def test_fine(evidence):
    '''서비스 정상 실행 확인: a passing check.'''
    evidence.at_most("queue depth", 3, "jobs", 10)
    evidence.verdict()
"""


def fill_run(tmp_path: Path, reports: Path, leave: int, xml_in_the_way: bool = False):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": FILLER})
    env = {"FILL_DIR": str(reports), "LEAVE": str(leave)}
    if xml_in_the_way:
        env["XML_IN_THE_WAY"] = "1"
    return run_pytest(["-m", "daily", "--reports-dir", str(reports)], cwd=suite, env=env)


def the_json(reports: Path) -> tuple[Path, dict]:
    (js,) = list(reports.glob("*/*.json"))
    return js, json.loads(js.read_text())


# ---- the reports dir fills up mid-run ----------------------------------------------------


def test_full_reports_disk_keeps_the_json_and_says_what_was_not_written(tmp_path, tmpfs):
    """Before: junitxml's ENOSPC aborted the session-end hooks: the JSON stayed
    {"status": "running"}, no HTML, no reason printed. Now the JSON is written first;
    the HTML that does not fit is named on stderr and in the JSON."""
    reports = tmpfs("size=256k")
    proc = fill_run(tmp_path, reports, leave=8192)
    assert proc.returncode == 0, proc.stderr
    js, doc = the_json(reports)
    assert doc["status"] == "finished" and len(doc["checks"]) == 2
    html = js.with_suffix(".html")
    line = f"HTML report {html}: not written: No space left on device"
    assert doc["unwritten"] == [line]
    assert f"opscheck: {line}" in proc.stderr
    assert not html.exists()  # no cut-short page
    assert js.with_suffix(".xml").is_file()
    assert not list(js.parent.glob(".tmp-*"))


def test_completely_full_reports_disk_still_ends_the_run_saying_so(tmp_path, tmpfs):
    reports = tmpfs("size=256k")
    proc = fill_run(tmp_path, reports, leave=0)
    assert proc.returncode == 0, proc.stderr
    js, doc = the_json(reports)
    assert doc["status"] == "unwritten" and doc["exit_code"] == 0, doc
    stem = js.with_suffix("")
    for what, suffix in (("JSON", "json"), ("XML", "xml"), ("HTML", "html")):
        line = f"{what} report {stem}.{suffix}: not written: No space left on device"
        assert f"opscheck: {line}" in proc.stderr, proc.stderr
        assert line in doc["unwritten"]
    assert "Traceback" not in proc.stderr


def test_a_failing_xml_writer_does_not_stop_the_html_one(tmp_path, tmpfs):
    """junitxml's failure (here a dir where its file goes) no longer aborts the hooks."""
    reports = tmpfs("size=4m")
    proc = fill_run(tmp_path, reports, leave=2 << 20, xml_in_the_way=True)
    js, doc = the_json(reports)
    assert doc["status"] == "finished"
    assert js.with_suffix(".html").is_file()
    assert doc["unwritten"] == [
        f"XML report {js.with_suffix('.xml')}: not written: Is a directory"
    ], doc.get("unwritten")
    assert proc.returncode == 0


# ---- the reports dir unusable at start ----------------------------------------------------


def usage_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_read_only_reports_dir_is_one_usage_error(tmp_path, tmpfs):
    reports = tmpfs("ro,size=64k")
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": GOOD})
    proc = run_pytest(["-m", "daily", "--reports-dir", str(reports)], cwd=suite)
    assert usage_error(proc) == (f"ERROR: cannot write reports in {reports}: Read-only file system")


def test_reports_dir_that_is_a_file_is_one_usage_error(tmp_path):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": GOOD})
    (suite / "reports").write_text("not a dir")
    proc = run_pytest(["-m", "daily"], cwd=suite)
    assert (
        usage_error(proc) == f"ERROR: cannot write reports in {suite / 'reports'}: Not a directory"
    )


def test_full_reports_dir_at_start_is_one_usage_error(tmp_path, tmpfs):
    reports = tmpfs("size=64k")
    with open(reports / "filler", "wb") as f, pytest.raises(OSError):
        f.write(bytes(1 << 20))
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": GOOD})
    proc = run_pytest(["-m", "daily", "--reports-dir", str(reports)], cwd=suite)
    assert usage_error(proc) == (
        f"ERROR: cannot write reports in {reports}: No space left on device"
    )
    assert not list(reports.glob("*/*.json"))  # no empty report left behind


# ---- the state dir ---------------------------------------------------------------------


def test_state_dir_that_is_a_file_is_one_usage_error(sandbox_factory, tmp_path):
    """Before: nine log checks each ended in a raw NotADirectoryError."""
    sb = sandbox_factory("down")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / ".state").write_text("")
    cli = ["--reports-dir", str(reports), "--ops-config", str(sb.config), "-m", "daily"]
    line = usage_error(run_pytest(cli))
    assert line == f"ERROR: the suite's state dir {reports / '.state'} is not a directory"
    assert not list(reports.glob("*/*.json"))


def test_read_only_state_dir_is_one_usage_error(tmp_path, tmpfs):
    """Before (unwritable .state): nine raw PermissionErrors. Root ignores modes, so the
    dir is a read-only mount here."""
    reports = tmp_path / "reports"
    reports.mkdir()
    state = tmpfs("ro,size=64k")
    (reports / ".state").symlink_to(state)
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": GOOD})
    proc = run_pytest(["-m", "daily", "--reports-dir", str(reports)], cwd=suite)
    assert usage_error(proc) == (
        f"ERROR: the suite's state dir {reports / '.state'} cannot be written: "
        "Read-only file system"
    )


# ---- the scratch dir ----------------------------------------------------------------------


SCRATCH_CHECKS = ("-m", "weekly or monthly", "-k", "backup_integrity or restore_drill")


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("missing", "No such file or directory"),
        ("file", "Not a directory"),
        ("read-only", "Read-only file system"),
        ("full", "No space left on device"),
    ],
)
def test_unusable_scratch_dir_is_named_not_the_backups(
    sandbox_factory, run_checks, tmp_path, tmpfs, kind, problem
):
    """Before: every backup failed with 'cannot read: ...', blaming the backups."""
    sb = sandbox_factory("down")
    scratch = tmp_path / "scratch"
    if kind == "file":
        scratch.write_text("")
    elif kind == "read-only":
        scratch = tmpfs("ro,size=64k")
    elif kind == "full":
        scratch = tmpfs("size=64k")
    run = run_checks(sb.with_config(f'[paths]\nscratch_dir = "{scratch}"\n'), *SCRATCH_CHECKS)
    for check in ("backup_integrity", "restore_drill"):
        entry = run.one(check)
        assert entry["outcome"] == "failed", entry
        assert entry["message"].startswith(f"scratch dir {scratch}: {problem}"), entry
        assert "cannot read" not in entry["message"]
    if kind == "full":
        assert not list(scratch.iterdir())  # nothing half-restored left


# ---- no overlap ---------------------------------------------------------------------------


def test_a_second_run_of_the_label_exits_at_once_and_the_first_is_intact(tmp_path):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": SLEEPER})
    first = Started(["-m", "daily"], suite)
    first.wait_for("the first run's sleeping check", (suite / "started").exists)
    second = run_pytest(["-m", "daily"], cwd=suite, timeout=60)
    line = usage_error(second)
    lock = suite / "reports" / "daily" / ".lock"
    assert line.startswith(f"ERROR: another 'daily' run (pid {first.proc.pid}, started 20")
    assert line.endswith(f"Z) holds {lock}; this run did not start")
    code, _, _ = first.signal(signal.SIGTERM)
    assert code == 2
    doc, _, _ = triple(suite / "reports")  # exactly one run's triple, complete
    assert by_id(doc)["sleeps"]["outcome"] == "error"


def test_other_labels_are_not_blocked(tmp_path):
    body = SLEEPER + GOOD.replace("daily", "weekly").replace("test_fine", "test_wfine")
    body = body.replace("test_broken", "test_wbroken")
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": body})
    first = Started(["-m", "daily"], suite)
    first.wait_for("the daily run's sleeping check", (suite / "started").exists)
    weekly = run_pytest(["-m", "weekly"], cwd=suite, timeout=60)
    assert weekly.returncode == 1, weekly.stderr
    first.signal(signal.SIGTERM)


def test_a_killed_runs_lock_does_not_block_the_next(tmp_path):
    """The kernel drops an flock with its holder, SIGKILL included: no stale lock."""
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": SLEEPER})
    first = Started(["-m", "daily"], suite)
    first.wait_for("the sleeping check", (suite / "started").exists)
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.communicate()
    (suite / "checks" / "daily" / "test_x.py").write_text("import pytest\n" + GOOD)
    second = run_pytest(["-m", "daily"], cwd=suite, timeout=60)
    assert second.returncode == 1, second.stderr
    assert (suite / "reports" / "daily" / ".lock").is_file()
