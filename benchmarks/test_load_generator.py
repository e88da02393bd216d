"""Requests per second Locust generates against a trivial sandbox endpoint, next to wrk
(Debian's wrk package) on the same endpoint in the same run: one Locust process and
Locust with 2 worker processes. Run: `python -m pytest benchmarks/test_load_generator.py
--benchmark-only`. The ratio Locust/wrk is the figure; wrk's number is bounded by the
sandbox server (one uvicorn process) as much as by wrk itself."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from opscheck.sandbox import control

HERE = Path(__file__).resolve().parent
SECONDS = 10


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("sb")
    config = control.up(root, control.Options(latency_scale=0.0))
    import tomllib

    yield tomllib.loads(config.read_text())["service"]["base_url"]
    control.down(root)


def _locust(url: str, processes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(HERE / "locust_trivial.py"),
            "--headless",
            "-u",
            "50",
            "-r",
            "50",
            "-t",
            f"{SECONDS}s",
            "--host",
            url,
            "--csv",
            f"{tmp}/r",
            "--only-summary",
        ]
        if processes:
            cmd += ["--processes", str(processes)]
        subprocess.run(cmd, capture_output=True, timeout=SECONDS + 60, check=True)
        with open(f"{tmp}/r_stats.csv") as f:
            rows = {r["Name"]: r for r in csv.DictReader(f)}
        return float(rows["Aggregated"]["Requests/s"])


def _wrk(url: str) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c50", f"-d{SECONDS}s", f"{url}/__sandbox__/ready"],
        capture_output=True,
        text=True,
        timeout=SECONDS + 30,
        check=True,
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


@pytest.mark.parametrize("tool", ["wrk", "locust-1-process", "locust-2-workers"])
def test_requests_per_second(benchmark, target, tool):
    benchmark.group = "requests per second, trivial endpoint"
    if tool == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    fn = {
        "wrk": lambda: _wrk(target),
        "locust-1-process": lambda: _locust(target, 0),
        "locust-2-workers": lambda: _locust(target, 2),
    }[tool]
    rps = benchmark.pedantic(fn, rounds=1)
    benchmark.extra_info["rps"] = round(rps, 1)
