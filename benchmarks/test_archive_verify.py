"""`archive verify` over a year of report triples, side by side with `sha256sum`.

365 daily, 52 weekly and 12 monthly runs (HTML ~250 KB, XML ~15 KB, JSON ~25 KB each,
built once in $OPSCHECK_BENCH_DIR and appended to a manifest). Throughput is report
bytes hashed per second, page cache warm for both. Goal: at least 0.8x sha256sum.
Run: `python -m pytest benchmarks/test_archive_verify.py --benchmark-only`.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest

from benchmarks.archive_fixtures import BENCH_DIR
from opscheck import archive

SIZES = {".html": 250_000, ".xml": 15_000, ".json": 25_000}


def _runs() -> list[tuple[str, str]]:
    start = date(2026, 1, 1)
    days = [start + timedelta(days=n) for n in range(365)]
    runs = [("daily", d.strftime("%Y%m%dT020000Z")) for d in days]
    runs += [("weekly", d.strftime("%Y%m%dT030000Z")) for d in days if d.weekday() == 0]
    runs += [("monthly", d.strftime("%Y%m%dT040000Z")) for d in days if d.day == 1]
    return runs


@pytest.fixture(scope="module")
def year() -> Path:
    reports = BENCH_DIR / "archive-year"
    if (reports / archive.MANIFEST).is_file():
        return reports
    shutil.rmtree(reports, ignore_errors=True)
    rng = random.Random(9)
    for label, stamp in _runs():
        stem = reports / label / stamp
        stem.parent.mkdir(parents=True, exist_ok=True)
        for suffix, size in SIZES.items():
            text = "".join(rng.choice("abcdefghij <>/\n가나다") for _ in range(size // 20)) * 20
            stem.with_suffix(suffix).write_text(text)
        archive.append(reports, stem, label, stamp)
    return reports


def _files(reports: Path) -> list[Path]:
    return sorted(p for p in reports.glob("*/*") if p.is_file() and not p.name.startswith("."))


def _sha256sum(paths: list[Path]) -> None:
    subprocess.run(["sha256sum", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)


def _verify(reports: Path) -> None:
    verdict = archive.verify(reports)
    assert verdict.intact, verdict.problems[:3]


@pytest.mark.parametrize("tool", ["sha256sum", "opscheck"])
def test_verify_a_year(benchmark, year, tool):
    benchmark.group = "a year of report triples (429 runs)"
    paths = _files(year)
    assert len(paths) == 3 * len(_runs())
    if tool == "sha256sum":
        _sha256sum(paths)  # warm the page cache
        benchmark.pedantic(_sha256sum, args=(paths,), rounds=5)
    else:
        _verify(year)
        benchmark.pedantic(_verify, args=(year,), rounds=5)
    size = sum(p.stat().st_size for p in paths)
    benchmark.extra_info["MB"] = round(size / 1e6, 1)
    benchmark.extra_info["MB_per_s"] = round(size / 1e6 / benchmark.stats.stats.mean, 1)
