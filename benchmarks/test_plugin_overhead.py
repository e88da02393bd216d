"""What the opscheck plugin costs on top of bare pytest, per check and per run.

Each round is a real `python -m pytest` in a subprocess over a generated suite of
N trivial checks (cadence marker, docstring), with the plugin active (config,
cadence rules, HTML + JUnit + JSON reports) or disabled (bare pytest, same ini
otherwise). Per-check overhead = slope between N=50 and N=500; per-run overhead =
what is left at N=50. Run: `python -m pytest benchmarks --benchmark-only`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = '''
@pytest.mark.daily
def test_trivial_{n}():
    """서비스 정상 실행 확인: trivial."""
    assert True
'''


def make_suite(root: Path, n: int, plugin: bool) -> Path:
    ini = (REPO / "pytest.ini").read_text()
    if not plugin:
        ini = ini.replace("opscheck_suite = true\n", "")
    (root / "pytest.ini").write_text(ini)
    checks = root / "checks" / "daily"
    checks.mkdir(parents=True)
    (checks / "test_trivial.py").write_text(
        "import pytest\n" + "".join(CHECK.format(n=i) for i in range(n))
    )
    return root


def run(root: Path, plugin: bool) -> None:
    args = [sys.executable, "-m", "pytest", "-q", "-m", "daily", "-p", "no:benchmark"]
    if not plugin:
        args += ["-p", "no:opscheck.plugin"]
    proc = subprocess.run(args, cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\d+ passed", proc.stdout)


@pytest.mark.parametrize("n", [50, 500])
@pytest.mark.parametrize("plugin", [False, True], ids=["bare", "opscheck"])
def test_run_time(benchmark, tmp_path, n, plugin):
    root = make_suite(tmp_path, n, plugin)
    benchmark.group = f"{n} checks"
    benchmark.pedantic(run, args=(root, plugin), rounds=7, warmup_rounds=1)
