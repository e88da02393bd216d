"""Log analysis speed and memory: grep -c, the guide's analyser and ours, side by side.

On a ~1 GiB app log in the service's format. Throughput is file bytes per second.
Run: `python -m pytest benchmarks/test_log_analysis.py --benchmark-only`.
"""

from __future__ import annotations

import gzip
import itertools
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.guide_analyzer import GuideLogAnalyzer
from benchmarks.log_fixtures import BENCH_DIR, access_log, access_log_as, app_log, one_day
from opscheck.probes.logs.files import summarize

GIB = 1 << 30


@pytest.fixture(scope="module")
def big() -> Path:
    return app_log("log-1g", GIB)


@pytest.fixture(scope="module")
def small() -> Path:
    return app_log("log-100m", 100 << 20)


def _rate(benchmark, path: Path) -> None:
    size = path.stat().st_size
    benchmark.extra_info["file_MB"] = round(size / 1e6, 1)
    benchmark.extra_info["MB_per_s"] = round(size / 1e6 / benchmark.stats.stats.mean, 1)


def test_grep_count(benchmark, big):
    benchmark.group = "1 GiB app log"
    benchmark.pedantic(
        lambda: subprocess.run(["grep", "-c", " - ERROR - ", str(big)], capture_output=True),
        rounds=3,
    )
    _rate(benchmark, big)


def test_guide_analyzer(benchmark, small):
    """The guide's analyser on the 100 MiB file (it would take minutes on 1 GiB)."""
    benchmark.group = "guide-style baseline (100 MiB)"
    benchmark.pedantic(GuideLogAnalyzer(str(small)).analyze, rounds=1)
    _rate(benchmark, small)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("which", ["big", "big_one_day"])
def test_opscheck_analysis(benchmark, request, which, workers):
    """The full analysis; `x_grep` is its throughput over grep -c's, timed right after
    on the same file (this VM's speed drifts: side by side is the fair comparison).
    The same 1 GiB over 57 days, and as one busy day (fewer, fuller hours)."""
    benchmark.group = "1 GiB app log"
    path = request.getfixturevalue(which)
    result = benchmark.pedantic(summarize, args=(str(path), None, workers), rounds=5)
    assert result[0].lines > 1_000_000
    _rate(benchmark, path)
    grep = min(_timed(["grep", "-c", " - ERROR - ", str(path)]) for _ in range(3))
    benchmark.extra_info["x_grep"] = round(grep / benchmark.stats.stats.min, 3)


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=False)
    return time.perf_counter() - start


ACCESS_SIZE = 200_000_000
GREP_5XX = {"json": '"status":500,'}  # what grep -c counts: 500s, as each format writes them


@pytest.mark.parametrize("fmt", ["combined", "timed", "main", "json"])
def test_access_log(benchmark, fmt):
    """A 200 MB nginx access log in each format (the same traffic), read by the compiled
    format with 2 workers; `x_grep` is its throughput over grep -c's counting the 500s,
    timed right after on the same file."""
    benchmark.group = "nginx access log (200 MB)"
    path = access_log("access-200mb", ACCESS_SIZE) if fmt == "timed" else None
    path = path or access_log_as(fmt, ACCESS_SIZE)
    result = benchmark.pedantic(
        summarize, args=(str(path), None, 2, "access"), kwargs={"access_format": fmt}, rounds=3
    )
    assert result[0].lines > 500_000 and not result[0].unparsed
    _rate(benchmark, path)
    pattern = GREP_5XX.get(fmt, '" 500 ')
    grep = min(_timed(["grep", "-c", pattern, str(path)]) for _ in range(3))
    benchmark.extra_info["grep_MB_per_s"] = round(path.stat().st_size / 1e6 / grep, 1)
    benchmark.extra_info["x_grep"] = round(grep / benchmark.stats.stats.min, 3)


# The parent's peak is VmHWM: ru_maxrss survives execve on Linux, so a process started
# from pytest would report pytest's own peak. A worker's is ru_maxrss (it counts from
# the parent's size when spawned, so it can only read high).
PEAK = """
import re, resource, sys
from pathlib import Path
from opscheck.probes.logs.files import summarize
summarize(sys.argv[1], None, int(sys.argv[2]))
hwm = re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)
print(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.fixture(scope="module")
def big_one_day(big) -> Path:
    return one_day(big, "log-1g-one-day")


@pytest.mark.parametrize("which", ["small", "big", "big_one_day"])
def test_peak_memory(benchmark, request, which):
    """Peak RSS (KiB) of the analysis in a fresh process, and of its largest worker:
    100 MiB, 1 GiB over 57 days, and the same 1 GiB as one busy day."""
    benchmark.group = "peak RSS"
    path = request.getfixturevalue(which)
    out = benchmark.pedantic(
        lambda: (
            subprocess.run(
                [sys.executable, "-c", PEAK, str(path), "2"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        ),
        rounds=1,
    )
    parent, child = (int(x) for x in out.split())
    benchmark.extra_info["file_MB"] = round(path.stat().st_size / 1e6, 1)
    benchmark.extra_info["peak_rss_MiB"] = round(parent / 1024, 1)
    benchmark.extra_info["worker_peak_rss_MiB"] = round(child / 1024, 1)


@pytest.fixture(scope="module")
def rotated(big) -> Path:
    """The big log cut into 8 days the way logrotate leaves them."""
    folder = BENCH_DIR / "rotated"
    if (folder / "app.log").exists():
        return folder / "app.log"
    folder.mkdir(exist_ok=True)
    data = big.read_bytes()
    cuts = [0] + [data.index(b"\n", len(data) * i // 8) + 1 for i in range(1, 8)] + [len(data)]
    parts = [data[a:b] for a, b in itertools.pairwise(cuts)]
    for n, part in enumerate(reversed(parts)):
        if n == 0:
            (folder / "app.log").write_bytes(part)
        elif n == 1:
            (folder / "app.log.1").write_bytes(part)
        else:
            (folder / f"app.log.{n}.gz").write_bytes(gzip.compress(part, 1))
    return folder / "app.log"


@pytest.mark.parametrize("run", ["first", "second"])
def test_incremental(benchmark, rotated, tmp_path_factory, run):
    """The daily run over the same 8 days: the second reads (almost) nothing again."""
    benchmark.group = "8 rotated days, cached"
    cache = BENCH_DIR / "cache"

    def analyse():
        if run == "first":
            shutil.rmtree(cache, ignore_errors=True)
        return summarize(str(rotated), cache, 2)

    if run == "second" and not cache.exists():
        summarize(str(rotated), cache, 2)
    _summary, stats = benchmark.pedantic(analyse, rounds=3)
    benchmark.extra_info.update(stats)
