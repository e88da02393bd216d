"""The daily host checks over 1, 4 and 16 SSH hosts: wall time, and how it grows.

Each host is a real sshd on a 127.0.0.1 port (this machine, through SSH); each round is a
real `python -m pytest -m daily` in a subprocess over the host checks (cpu_usage with a
1 s sample, memory_usage, disk_usage per mount, env_file_mode, data_dir_modes) against a
sandbox layout. Goal: 16 hosts in under 3x the time of one (every host read at once, in
one command over one connection). The reference: `ssh host cat /proc/stat` to each of
the 16 hosts in a shell loop, one connection each.
Run: `python -m pytest benchmarks/test_fleet.py --benchmark-only`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from opscheck.sandbox import control
from tests.sshfleet import make_fleet

REPO = Path(__file__).resolve().parents[1]
HOST_CHECKS = "cpu_usage or memory_usage or disk_usage or mode"


@pytest.fixture(scope="module")
def fleet16(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    fleet = make_fleet(root)
    fleet.start(16)
    sandbox = root / "sandbox"
    config = Path(control.up(sandbox, control.Options(faults=("down",), redis=False)))
    yield fleet, config
    control.down(sandbox)
    fleet.stop_all()


def _config(fleet, base: Path, n: int) -> Path:
    text = re.sub(r"(?ms)^\[hosts\].*?(?=^\[|\Z)", "", base.read_text())
    hosts = fleet.hosts_toml([s.spec() for s in fleet.started[:n]], timeout_s=10)
    path = base.with_name(f"fleet-{n}.toml")
    path.write_text(text + "\n" + hosts.replace("cpu_sample_s = 0.5", "cpu_sample_s = 1.0"))
    return path


def _run(config: Path, reports: Path, n: int) -> None:
    args = [sys.executable, "-m", "pytest", "-q", "-m", "daily", "-k", HOST_CHECKS]
    args += ["--ops-config", str(config), "--reports-dir", str(reports), "-p", "no:benchmark"]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
    counted = sum(int(x) for x in re.findall(r"(\d+) (?:passed|failed)", proc.stdout))
    assert counted >= 7 * n, proc.stdout[-2000:]  # every row of every host ran
    assert "host root@" not in proc.stdout, proc.stdout[-2000:]  # no host failed to answer


@pytest.mark.parametrize("n", [1, 4, 16])
def test_daily_host_checks(benchmark, fleet16, tmp_path, n):
    fleet, base = fleet16
    config = _config(fleet, base, n)
    benchmark.group = "daily host checks over N ssh hosts"
    benchmark.pedantic(_run, args=(config, tmp_path / "reports", n), rounds=3, warmup_rounds=1)


def test_reference_ssh_loop(benchmark, fleet16):
    """`ssh host cat /proc/stat` to each of the 16 hosts in turn, a connection each."""
    fleet, _ = fleet16
    ports = " ".join(str(s.port) for s in fleet.started)
    key, conf = fleet.client_key, fleet.ssh_config
    loop = (
        f"for p in {ports}; do ssh -F {conf} -i {key} -o BatchMode=yes -p $p root@127.0.0.1 "
        "cat /proc/stat >/dev/null || exit 1; done"
    )
    benchmark.group = "reference"
    benchmark.pedantic(
        subprocess.run,
        args=(["sh", "-c", loop],),
        kwargs={"check": True},
        rounds=3,
        warmup_rounds=1,
    )
