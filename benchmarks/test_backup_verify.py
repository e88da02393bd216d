"""Backup verification speed and memory, side by side with gzip -t and pigz -t.

One ~1 GiB archive, and a week of sets (28 archives, ~1 GiB together). Throughput is
compressed bytes per second. Peak RSS of a verification is measured in a fresh
subprocess. Run: `python -m pytest benchmarks/test_backup_verify.py --benchmark-only`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.archive_fixtures import archive
from opscheck.probes.archives import verify
from opscheck.probes.restore import verify_all, workers

WEEK = 28


@pytest.fixture(scope="module")
def one_gib() -> Path:
    return archive("one-gib.tar.gz", 1 << 30)


@pytest.fixture(scope="module")
def week() -> list[Path]:
    return [archive(f"week-{n:02d}.tar.gz", (1 << 30) // WEEK, seed=n) for n in range(WEEK)]


def _mb_per_s(benchmark, paths: list[Path]) -> None:
    size = sum(p.stat().st_size for p in paths)
    benchmark.extra_info["compressed_MB"] = round(size / 1e6, 1)
    benchmark.extra_info["MB_per_s"] = round(size / 1e6 / benchmark.stats.stats.mean, 1)


def _tool(cmd: str, paths: list[Path]) -> None:
    for p in paths:
        subprocess.run([cmd, "-t", str(p)], check=True)


@pytest.mark.parametrize("tool", ["gzip", "pigz", "opscheck"])
def test_one_archive(benchmark, one_gib, tool):
    benchmark.group = "one 1 GiB archive"
    if tool != "opscheck" and shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    if tool == "opscheck":
        result = benchmark.pedantic(verify, args=(one_gib, 1 << 40), rounds=3)
        assert result.ok, result.error
    else:
        benchmark.pedantic(_tool, args=(tool, [one_gib]), rounds=3)
    _mb_per_s(benchmark, [one_gib])


@pytest.mark.parametrize("tool", ["gzip", "opscheck"])
def test_week_of_sets(benchmark, week, tool):
    benchmark.group = "28 archives (a week of sets)"
    if tool == "opscheck":
        results = benchmark.pedantic(verify_all, args=(week, 1 << 40, "", workers()), rounds=3)
        assert all(r.ok for r in results)
    else:
        benchmark.pedantic(_tool, args=(tool, week), rounds=3)
    _mb_per_s(benchmark, week)


PEAK_RSS = """
import resource, sys
from pathlib import Path
from opscheck.probes.archives import verify
assert verify(Path(sys.argv[1]), 1 << 40).ok
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.parametrize("name", ["week-00.tar.gz", "one-gib.tar.gz"])
def test_peak_memory(benchmark, one_gib, week, name):
    """Peak RSS (KiB) of one verification in its own process: flat in archive size."""
    benchmark.group = "peak RSS"
    path = one_gib.parent / name
    out = benchmark.pedantic(
        lambda: (
            subprocess.run(
                [sys.executable, "-c", PEAK_RSS, str(path)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        ),
        rounds=1,
    )
    benchmark.extra_info["archive_MB"] = round(path.stat().st_size / 1e6, 1)
    benchmark.extra_info["peak_rss_MiB"] = round(int(out) / 1024, 1)
