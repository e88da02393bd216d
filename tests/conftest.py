"""The suite's own test harness: real sandboxes, real pytest runs in subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from opscheck.sandbox import control

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    """One `pytest` run of the checks: its exit code, output and JSON report."""

    exit_code: int
    stdout: str
    stderr: str
    reports_dir: Path
    report: dict[str, Any] = field(default_factory=dict)

    def checks(self, check_id: str) -> list[dict[str, Any]]:
        return [c for c in self.report.get("checks", []) if c["id"] == check_id]

    def one(self, check_id: str) -> dict[str, Any]:
        found = self.checks(check_id)
        assert len(found) == 1, f"{check_id}: {len(found)} entries in {self.report}"
        return found[0]

    def outcomes(self) -> dict[str, str]:
        """id -> worst outcome over its parameters."""
        rank = {"passed": 0, "skipped": 1, "waived": 1, "not run": 1, "failed": 2, "error": 3}
        out: dict[str, str] = {}
        for c in self.report.get("checks", []):
            if rank[c["outcome"]] >= rank.get(out.get(c["id"], "passed"), 0):
                out[c["id"]] = c["outcome"]
        return out

    def failed_ids(self) -> set[str]:
        return {i for i, o in self.outcomes().items() if o in ("failed", "error")}


def run_pytest(
    args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`pytest ARGS` in a subprocess; fails the test if any process the run started (a
    scanner worker, Locust, tar: all inherit a tag in their environment) is still alive
    3 s after it exited: nothing is left behind, whatever the fault."""
    tag = uuid.uuid4().hex
    full_env = {k: v for k, v in os.environ.items() if k != "OPSCHECK_CONFIG"}
    full_env.update(env or {})
    full_env[RUN_TAG] = tag
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    finally:
        left = left_behind(tag)
        assert not left, f"alive 3 s after pytest exited: {left}"


RUN_TAG = "OPSCHECK_TEST_RUN"
SHARED_MACHINE = "[thresholds]\ncpu_percent = 100.0\n"  # see sandbox_factory


def left_behind(tag: str, grace_s: float = 3.0) -> list[str]:
    """Processes carrying `tag` still alive after `grace_s` (killed, and named)."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = []
        for proc in psutil.process_iter(["pid", "name"]):
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(RUN_TAG) == tag and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return [f"{p.info['name']} (pid {p.info['pid']})" for p in alive]


def _clock_hour() -> str:
    """This clock hour, in UTC (the log windows') and local time (the layout's cron)."""
    return f"{datetime.now(UTC):%Y-%m-%d %H} {datetime.now():%Y-%m-%d %H}"


def in_one_clock_hour(runs: Callable[[], T]) -> T:
    """`runs()`, done again once if the clock hour (`_clock_hour`) turned while it ran:
    the log checks' windows are the clock hours of now, so runs compared across an hour's
    turn count different hours (a CI run at 03:00 failed so)."""
    for _ in range(2):
        hour = _clock_hour()
        result = runs()
        if _clock_hour() == hour:
            break
    return result


def cmdlines(procs: list[psutil.Process]) -> list[str]:
    """The command lines of those still alive (one may exit or be a zombie between listing
    and asking)."""
    lines = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            lines.append(" ".join(p.cmdline()))
    return lines


def load_report(reports_dir: Path) -> dict[str, Any]:
    found = sorted(p for p in reports_dir.glob("*/*.json") if not p.parent.name.startswith("."))
    assert len(found) == 1, f"expected one JSON report in {reports_dir}, found {found}"
    return json.loads(found[0].read_text())


@pytest.fixture
def run_checks(tmp_path: Path):
    """Run the real checks with a config; returns a `Run` with the parsed JSON report."""
    counter = iter(range(1000))

    def run(config: Path | None, *args: str, env: dict[str, str] | None = None) -> Run:
        reports = tmp_path / f"reports-{next(counter)}"
        cli = ["--reports-dir", str(reports), *args]
        if config is not None:
            cli += ["--ops-config", str(config)]
        proc = run_pytest(cli, env=env)
        report = load_report(reports) if reports.exists() else {}
        return Run(proc.returncode, proc.stdout, proc.stderr, reports, report)

    return run


@dataclass
class Sandbox:
    root: Path
    config: Path

    def with_config(self, extra: str) -> Path:
        """A copy of the sandbox's config with `extra` TOML merged in by section."""
        import tomllib

        base = tomllib.loads(self.config.read_text())
        for section, values in tomllib.loads(extra).items():
            base.setdefault(section, {}).update(values)
        path = self.root / f"opscheck-{abs(hash(extra))}.toml"
        path.write_text(_toml(base))
        return path


def _toml(doc: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in doc.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def goldens(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """`current()`: a healthy sandbox layout built in this clock hour, copied by every
    test's sandbox. Built once an hour, not once a session: a layout is as of its
    build, so one built at 01:50 and copied at 02:05 lacked the 02:00 backup (stale
    backup_fresh) and counted other clock hours than a fresh one."""
    built: dict[str, Path] = {}

    def current() -> Path:
        hour = _clock_hour()
        if hour not in built:
            root = tmp_path_factory.mktemp("golden")
            control.up(root, control.Options(faults=("down",), redis=False))
            built[hour] = root
        return built[hour]

    return current


@pytest.fixture
def golden(goldens: Callable[[], Path]) -> Path:
    """The current golden layout (`goldens`)."""
    return goldens()


@pytest.fixture
def sandbox_factory(request: pytest.FixtureRequest, tmp_path: Path, golden: Path) -> Iterator:
    """`make(*faults)` lays out a sandbox (copied from the golden one) and starts it.

    `cpu_usage` measures the machine the suite runs on, which the suite's own parallel
    tests keep busy: a sandbox's config lifts its limit to 100 %, except for tests marked
    `serial` (the proofs of cpu_usage itself, run alone after the parallel part)."""
    made: list[Path] = []
    shared_machine = request.node.get_closest_marker("serial") is None

    def make(*faults: str, **opts: Any) -> Sandbox:
        root = tmp_path / f"sandbox-{len(made)}"
        made.append(root)
        options = control.Options(
            faults=faults,
            latency_scale=opts.pop("latency_scale", 0.02),
            timeout_s=opts.pop("timeout_s", 2.0),
            template=golden,
            **opts,
        )
        sb = Sandbox(root, control.up(root, options))
        if shared_machine:
            sb.config = sb.with_config(SHARED_MACHINE)
        return sb

    yield make
    for root in made:
        control.down(root)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator:
    """`tmpfs("size=4m")`: a real small file system to fill (needs mount rights: root)."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        mnt = tmp_path / f"tmpfs-{len(mounted)}"
        mnt.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def sandbox(sandbox_factory) -> Sandbox:
    """A healthy sandbox with its replica running."""
    return sandbox_factory()


from tests.historydb import close_databases, history_url, pg_cluster  # noqa: E402, F401
from tests.realnginx import real_nginx  # noqa: E402, F401  (a real nginx before the sandbox)
from tests.sshfleet import hosts, silent_server, ssh_fleet  # noqa: E402, F401  (real sshd)
