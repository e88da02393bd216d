"""The OSV mirror match: the service's pins against 20,000 PyPI advisories (goal: < 2 s).

The mirror is generated once per run in the shape of the OSV PyPI export (one JSON file
per advisory, `PYSEC-`/`GHSA-` names, ECOSYSTEM and GIT ranges, long `versions` lists,
references, details text: 1-6 KB a record), over 4,000 package names with 60 records
naming the service's own packages (some in range of the pins, some not). Compared with
the obvious alternatives: parse every record, and `grep -l` for the names first.
Peak memory is traced (tracemalloc) in-process, time by pytest-benchmark.
Run: `python -m pytest benchmarks/test_osv_match.py --benchmark-only -p no:randomly`.
"""

from __future__ import annotations

import json
import random
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from opscheck.probes import dependencies
from opscheck.sandbox.layout import REQUIREMENTS

ADVISORIES = 20_000
SERVICE = ["fastapi", "uvicorn", "pydantic", "anthropic", "langchain", "chromadb", "httpx"]


def _versions(rng: random.Random, n: int) -> list[str]:
    return [f"{rng.randint(0, 3)}.{rng.randint(0, 40)}.{rng.randint(0, 12)}" for _ in range(n)]


def _record(rng: random.Random, i: int, name: str) -> dict:
    ident = (
        f"PYSEC-20{rng.randint(15, 26)}-{i}"
        if i % 2
        else f"GHSA-{i:04x}-{rng.randint(0, 9999):04d}-x"
    )
    fixed = f"{rng.randint(0, 3)}.{rng.randint(0, 120)}.{rng.randint(0, 9)}"
    return {
        "schema_version": "1.6.0",
        "id": ident,
        "modified": "2025-01-01T00:00:00Z",
        "published": "2024-06-01T00:00:00Z",
        "aliases": [f"CVE-20{rng.randint(15, 26)}-{rng.randint(1000, 99999)}"],
        "summary": f"{name}: a flaw in request handling",
        "details": " ".join(
            ["A crafted input leads to excessive resource use."] * rng.randint(3, 30)
        ),
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": name, "purl": f"pkg:pypi/{name}"},
                "ranges": [
                    {
                        "type": "GIT",
                        "repo": f"https://github.com/x/{name}",
                        "events": [{"introduced": "0"}, {"fixed": f"{rng.getrandbits(160):040x}"}],
                    },
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]},
                ],
                "versions": _versions(rng, rng.randint(5, 120)),
            }
        ],
        "references": [{"type": "WEB", "url": f"https://example.org/{name}/{i}"} for _ in range(4)],
        "database_specific": {"severity": "MODERATE"},
    }


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    rng = random.Random(11)
    folder = tmp_path_factory.mktemp("osv")
    names = [f"pkg-{n}-{rng.choice(['utils', 'client', 'sdk', 'core'])}" for n in range(4000)]
    for i in range(ADVISORIES):
        name = SERVICE[i % len(SERVICE)] if i % 333 == 0 else rng.choice(names)
        (folder / f"rec-{i:05d}.json").write_text(json.dumps(_record(rng, i, name)))
    return folder


@pytest.fixture(scope="module")
def pins(tmp_path_factory) -> dependencies.Pins:
    req = tmp_path_factory.mktemp("req") / "requirements.txt"
    req.write_text(REQUIREMENTS)
    return dependencies.read_pins(req)


def _grep_then_parse(pins: dependencies.Pins, folder: Path) -> int:
    """`grep -l -i -E` for the names, then parse and match those files only."""
    pattern = "|".join(f'"name": "{p.name}"' for p in pins.pins)
    out = subprocess.run(
        ["grep", "-l", "-r", "-i", "-E", pattern, str(folder)], capture_output=True, text=True
    ).stdout.split()
    audit = dependencies.Audit("grep")
    for path in out:
        dependencies._match_record(
            audit, pins, json.loads(Path(path).read_text()), {p.name for p in pins.pins}
        )
    return len(audit.findings)


def _parse_all(pins: dependencies.Pins, folder: Path) -> int:
    audit = dependencies.Audit("all")
    wanted = {p.name for p in pins.pins}
    for path in folder.glob("*.json"):
        dependencies._match_record(audit, pins, json.loads(path.read_bytes()), wanted)
    return len(audit.findings)


def _opscheck(pins: dependencies.Pins, folder: Path) -> int:
    return len(dependencies.osv_mirror(pins, folder).findings)


def _peak_mb(fn, *args) -> float:
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("way", ["opscheck", "opscheck-zip", "grep-then-parse", "parse-all"])
def test_osv_match(benchmark, mirror, pins, way, tmp_path_factory):
    benchmark.group = f"{len(pins.pins)} pins against {ADVISORIES} advisories"
    target = mirror
    fn = {
        "opscheck": _opscheck,
        "opscheck-zip": _opscheck,
        "grep-then-parse": _grep_then_parse,
        "parse-all": _parse_all,
    }[way]
    if way == "opscheck-zip":
        target = tmp_path_factory.mktemp("zip") / "all.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in mirror.iterdir():
                zf.write(f, f.name)
    found = benchmark.pedantic(fn, args=(pins, target), rounds=3, warmup_rounds=1)
    assert found == _opscheck(pins, mirror) > 0
    benchmark.extra_info["findings"] = found
    benchmark.extra_info["peak_traced_MB"] = round(_peak_mb(fn, pins, target), 1)
    if way.startswith("opscheck"):
        assert benchmark.stats.stats.max < 2.0, "goal: under 2 s"
