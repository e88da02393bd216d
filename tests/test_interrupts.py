"""SIGTERM and SIGINT mid-run (issue 12): real pytest runs in their own session, real
signals. After each: exit code 2, the JSON complete with the interrupted check an
`error`, the checks not reached `not run`, the HTML and XML written, no scratch left,
and no process of the run alive 3 s after pytest exits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, cmdlines
from tests.test_plugin import make_suite

SLEEPER = """
@pytest.mark.daily
def test_first(evidence):
    '''서비스 정상 실행 확인: passes.'''
    evidence.at_most("queue depth", 1, "jobs", 2)
    evidence.verdict()


@pytest.mark.daily
def test_sleeps():
    '''에러율 확인: runs until it is interrupted.'''
    import pathlib

    pathlib.Path("started").write_text("1")
    time.sleep(120)


@pytest.mark.daily
def test_after():
    '''API 응답 시간 체크: never reached.'''
"""


class Started:
    """A pytest run in its own session, and every process it started (seen while it ran)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None):
        full_env = {k: v for k, v in os.environ.items() if k != "OPSCHECK_CONFIG"}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", *args],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.seen: set[psutil.Process] = set()

    def descendants(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self.seen.update(found)
        return found

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            self.descendants()
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(f"pytest ended ({self.proc.returncode}) before {what}:\n{out}\n{err}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {what} within {timeout} s")
            time.sleep(0.05)
        self.descendants()

    def signal(self, sig: int, timeout: float = 60) -> tuple[int, str, str]:
        self.descendants()
        self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"pytest did not end within {timeout} s of the signal")
        return self.proc.returncode, out, err

    def survivors(self) -> list[str]:
        """Processes of the run (its group, or any it started) alive 3 s after it ended."""
        time.sleep(3)
        alive = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                group = os.getpgid(p.pid) == self.proc.pid
                if (group or p in self.seen) and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{p.pid} {' '.join(p.info['cmdline'] or [])[:120]}")
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return alive

    def kill(self) -> None:
        for p in self.descendants():
            p.kill()
        self.proc.kill()
        self.proc.communicate()


def triple(reports: Path) -> tuple[dict, Path, Path]:
    """The JSON (parsed), HTML and XML of the one run below `reports`."""
    (js,) = [p for p in reports.glob("*/*.json") if not p.parent.name.startswith(".")]
    html, xml = js.with_suffix(".html"), js.with_suffix(".xml")
    assert html.is_file() and xml.is_file(), sorted(js.parent.iterdir())
    return json.loads(js.read_text()), html, xml


def by_id(doc: dict) -> dict[str, dict]:
    return {c["id"]: c for c in doc["checks"]}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_finishes_the_report_triple(tmp_path, sig):
    """Before: SIGTERM gave exit 143, the JSON stayed {"status": "running"}, no HTML;
    the interrupted check was recorded passed."""
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": SLEEPER})
    run = Started(["-m", "daily", "-p", "no:cacheprovider"], suite)
    run.wait_for("the sleeping check", (suite / "started").exists)
    code, out, err = run.signal(sig)
    name = signal.Signals(sig).name
    assert code == 2, (out, err)
    doc, html, xml = triple(suite / "reports")
    assert doc["status"] == "interrupted" and doc["interrupted_by"] == name
    assert doc["exit_code"] == 2
    checks = by_id(doc)
    assert checks["first"]["outcome"] == "passed"
    assert checks["sleeps"]["outcome"] == "error", checks["sleeps"]
    assert checks["sleeps"]["message"] == f"interrupted ({name})"
    assert checks["after"]["outcome"] == "not run"
    assert checks["after"]["message"] == f"not run: the run was interrupted ({name}) before it"
    junit = xml.read_text()
    assert f"interrupted ({name})" in junit and 'errors="1"' in junit
    page = html.read_text()
    assert f"Interrupted ({name})" in page and "1 checks not run" in page
    assert run.survivors() == []


def test_no_outcome_is_assumed_before_it_is_measured(tmp_path):
    """A check whose setup passed and whose call never reported is not `passed`."""
    from opscheck.report import Entry

    assert Entry("x", "n", "daily", "warning", "g").outcome == ""
    body = SLEEPER.replace("def test_sleeps():", "def test_sleeps(evidence):")
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": body})
    run = Started(["-m", "daily"], suite)
    run.wait_for("the sleeping check", (suite / "started").exists)
    code, _, _ = run.signal(signal.SIGTERM)
    doc, _, _ = triple(suite / "reports")
    assert code == 2
    assert by_id(doc)["sleeps"]["outcome"] == "error"


def test_a_second_signal_while_finishing_does_not_break_the_reports(tmp_path):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": SLEEPER})
    run = Started(["-m", "daily"], suite)
    run.wait_for("the sleeping check", (suite / "started").exists)
    run.proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    code, out, err = run.signal(signal.SIGTERM)
    assert code == 2, (out, err)
    doc, _, _ = triple(suite / "reports")
    assert by_id(doc)["sleeps"]["outcome"] == "error"


# ---- mid-probe interrupts against the real sandbox -------------------------------------


def _start_checks(
    config: Path, reports: Path, *args: str, env: dict[str, str] | None = None
) -> Started:
    cli = ["--reports-dir", str(reports), "--ops-config", str(config), *args]
    return Started(cli, REPO, env)


def _scratch_bytes(scratch: Path) -> int:
    total = 0
    for root, _, files in os.walk(scratch):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _big_logs_archive(path: Path, size: int) -> None:
    """A valid logs backup holding one `size`-byte file of zeros (quick to make, slow to
    restore: every byte is written to the scratch dir)."""
    import tarfile

    from isal import igzip

    class Zeros:
        def __init__(self, n: int):
            self.left = n

        def read(self, n: int = -1) -> bytes:
            n = self.left if n < 0 else min(n, self.left)
            self.left -= n
            return bytes(n)

    mtime = path.stat().st_mtime
    with igzip.open(path, "wb", compresslevel=0) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        info = tarfile.TarInfo("app/logs/huge.log")
        info.size = size
        tar.addfile(info, Zeros(size))
    os.utime(path, (mtime, mtime))


def test_sigterm_mid_restore_drill_leaves_no_scratch(sandbox_factory, tmp_path):
    """Before: exit 143 and the half-restored set (the restored .env among it) left in
    the scratch dir."""
    sb = sandbox_factory("down")
    backups = sb.root / "backups" / "kakao-template"
    newest = sorted(backups.glob("logs_*.tar.gz"))[-1]
    _big_logs_archive(newest, 3 << 30)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config = sb.with_config(f'[paths]\nscratch_dir = "{scratch}"\n')
    reports = tmp_path / "reports"
    run = _start_checks(config, reports, "-m", "monthly")
    run.wait_for("a drill half-way", lambda: _scratch_bytes(scratch) > 200 << 20, timeout=180)
    code, out, err = run.signal(signal.SIGTERM)
    assert code == 2, (out, err)
    doc, _, _ = triple(reports)
    drill = by_id(doc)["restore_drill"]
    assert drill["outcome"] == "error" and drill["message"] == "interrupted (SIGTERM)", drill
    assert list(scratch.iterdir()) == []
    assert run.survivors() == []


def test_sigterm_mid_log_scan_stops_the_pool(sandbox_factory, tmp_path):
    """Before: exit 143 and the spawned log scanner left running."""
    sb = sandbox_factory("down")
    rotated = sb.root / "app" / "logs" / "app.log.1"
    chunk = rotated.read_bytes()
    with open(rotated, "ab") as f:
        for _ in range((800 << 20) // len(chunk)):
            f.write(chunk)
    reports = tmp_path / "reports"
    run = _start_checks(
        sb.config, reports, "-m", "daily", "-k", "error_log_review or warning_log_review"
    )

    def pool_started() -> bool:
        return any("spawn_main" in cmd for cmd in cmdlines(run.descendants()))

    run.wait_for("a log scanner process", pool_started)
    code, out, err = run.signal(signal.SIGTERM)
    assert code == 2, (out, err)
    doc, _, _ = triple(reports)
    checks = by_id(doc)
    assert checks["error_log_review"]["outcome"] == "error", checks["error_log_review"]
    assert checks["error_log_review"]["message"] == "interrupted (SIGTERM)"
    assert checks["warning_log_review"]["outcome"] == "not run"
    assert run.survivors() == []


@pytest.mark.slow
def test_sigterm_mid_load_test_stops_locust(sandbox_factory, tmp_path):
    """Before: exit 143 and Locust (its own session) went on loading the target."""
    sb = sandbox_factory()
    config = sb.with_config("[load]\nusers = 4\nspawn_rate = 4\nduration_s = 120\n")
    reports, temp = tmp_path / "reports", tmp_path / "temp"
    temp.mkdir()  # Locust's statistics folder lands here (TMPDIR)
    run = _start_checks(config, reports, "-m", "weekly and load", env={"TMPDIR": str(temp)})

    def locust_running() -> bool:
        return any("locust" in cmd for cmd in cmdlines(run.descendants()))

    run.wait_for("Locust", locust_running)
    time.sleep(3)  # loading the target
    code, out, err = run.signal(signal.SIGTERM)
    assert code == 2, (out, err)
    doc, _, _ = triple(reports)
    checks = by_id(doc)
    assert checks["load_test_p95"]["outcome"] == "error", checks["load_test_p95"]
    assert checks["load_test_p95"]["message"] == "interrupted (SIGTERM)"
    assert run.survivors() == []
    assert list(temp.iterdir()) == []


def test_small_inputs_start_no_process(sandbox_factory, tmp_path):
    """Before: the sandbox's 2.3 MB log set and its few MB of backups each started a
    spawned process pool. Now less than a pool's break-even is read in pytest's process."""
    sb = sandbox_factory("down")
    args = ("-m", "daily or weekly", "-k", "log or backup_integrity")
    run = _start_checks(sb.config, tmp_path / "reports", *args)
    spawned: set[str] = set()
    while run.proc.poll() is None:
        spawned.update(cmd for cmd in cmdlines(run.descendants()) if "spawn_main" in cmd)
        time.sleep(0.02)
    out, err = run.proc.communicate()
    assert run.proc.returncode in (0, 1), (out, err)
    doc, _, _ = triple(tmp_path / "reports")
    assert "backup_integrity" in by_id(doc) and "error_log_review" in by_id(doc)
    assert spawned == set()
