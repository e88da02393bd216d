"""A restore drill: unpack a backup set into a scratch dir and read what came back.

Never touches the live paths: everything lands in a fresh temporary directory below
`paths.scratch_dir` (or the system's temp dir) that is removed when the drill ends,
whether it passed or not. The live store and template data are only read.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from opscheck.probes import ProbeError
from opscheck.probes.archives import (
    ChromaFacts,
    Verified,
    chroma_facts,
    extract,
    remove_tree,
    template_records,
    verify,
    verify_json,
)
from opscheck.probes.backups import BackupFile, BackupSet


@dataclass
class Drill:
    """What restoring one set gave back."""

    label: str
    seconds: float = 0.0
    results: dict[str, Verified] = field(default_factory=dict)
    segments: set[str] = field(default_factory=set)  # HNSW segment folders restored
    env_keys: list[str] = field(default_factory=list)  # names only, never values
    has_requirements: bool = False
    chroma: ChromaFacts | None = None
    templates: int | None = None

    @property
    def errors(self) -> list[str]:
        return [f"{Path(r.path).name}: {r.error}" for r in self.results.values() if not r.ok]


@dataclass(frozen=True)
class Live:
    chroma: ChromaFacts
    templates: int | None
    templates_error: str = ""
    segments: frozenset[str] = frozenset()


def segment_dirs(chroma_dir: Path) -> set[str]:
    """The HNSW segment folders of a Chroma store (named by UUID, holding header.bin)."""
    if not chroma_dir.is_dir():
        return set()
    return {p.parent.name for p in chroma_dir.glob("*/header.bin")}


def env_key_names(path: Path) -> list[str]:
    """The variable names a .env file defines; values are read past, never kept."""
    names = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            name = line.split("=", 1)[0].removeprefix("export ").strip()
            if name.replace("_", "").isalnum():
                names.append(name)
    return names


def drill(bset: BackupSet, scratch_dir: str, max_bytes: int) -> Drill:
    """Restore every file of `bset` below a fresh scratch dir, then remove it."""
    result = Drill(bset.label)
    start = time.perf_counter()
    try:
        tmp = Path(tempfile.mkdtemp(prefix="opscheck-restore-", dir=scratch_dir or None))
    except OSError as exc:
        raise ProbeError(
            f"cannot make a scratch dir in {scratch_dir or 'the temp dir'}: {exc.strerror or exc}"
        ) from None
    try:
        for kind, f in bset.files.items():
            dest = tmp / kind
            dest.mkdir()
            result.results[kind] = _restore_one(f, dest, max_bytes)
        _read_restored(tmp, result)
    finally:
        remove_tree(tmp)
    result.seconds = time.perf_counter() - start
    return result


def _restore_one(f: BackupFile, dest: Path, max_bytes: int) -> Verified:
    if f.kind == "template_data":
        verified = verify_json(f.path, max_bytes)
        if verified.ok:
            shutil.copyfile(f.path, dest / f.path.name)
        return verified
    return extract(f.path, dest, max_bytes)


def _read_restored(tmp: Path, result: Drill) -> None:
    chroma = result.results.get("chroma_db")
    if chroma is not None and chroma.chroma is not None:
        result.chroma = chroma.chroma
        stores = list((tmp / "chroma_db").rglob("chroma.sqlite3"))
        if stores:
            result.segments = segment_dirs(stores[0].parent)
    data = result.results.get("template_data")
    if data is not None and data.ok:
        result.templates = data.templates
    config = tmp / "config"
    env = config / ".env"
    if env.is_file():
        result.env_keys = env_key_names(env)
    result.has_requirements = (config / "requirements.txt").is_file()


def live(chroma_dir: str, template_data: str) -> Live:
    """Row and record counts of the live store and template data, read-only."""
    db = Path(chroma_dir) / "chroma.sqlite3"
    facts = chroma_facts(db) if db.is_file() else ChromaFacts(error=f"{db} does not exist")
    try:
        templates, error = template_records(Path(template_data).read_bytes()), ""
    except OSError as exc:
        templates, error = None, f"{template_data}: {exc.strerror or exc}"
    except ValueError as exc:
        templates, error = None, f"{template_data}: invalid JSON: {exc}"
    return Live(facts, templates, error, frozenset(segment_dirs(Path(chroma_dir))))


def verify_file(path: Path, max_bytes: int, scratch_dir: str) -> Verified:
    """Read one backup file through, whatever its kind."""
    if path.name.endswith(".json"):
        return verify_json(path, max_bytes)
    return verify(path, max_bytes, Path(scratch_dir) if scratch_dir else None)


def verify_all(paths: list[Path], max_bytes: int, scratch_dir: str, workers: int) -> list[Verified]:
    """Read many backup files through, on `workers` processes, in the given order."""
    if workers <= 1 or len(paths) <= 1:
        return [verify_file(p, max_bytes, scratch_dir) for p in paths]
    biggest_first = sorted(paths, key=_size, reverse=True)  # keeps both workers busy to the end
    spawn = multiprocessing.get_context("spawn")  # no fork of a threaded pytest process
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        futures = {p: pool.submit(verify_file, p, max_bytes, scratch_dir) for p in biggest_first}
        return [futures[p].result() for p in paths]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def workers() -> int:
    """Processes for reading archives: every core."""
    return max(1, len(_cpus()))


def _cpus() -> set[int]:
    import os

    try:
        return os.sched_getaffinity(0)
    except AttributeError:
        return set(range(os.cpu_count() or 1))


def missing_segments(drill: Drill, live: Live) -> list[str]:
    """Live HNSW segment folders the restored store lacks."""
    if drill.chroma is None:
        return []
    return sorted(live.segments - drill.segments)


def count_pairs(drill: Drill, live: Live) -> list[tuple[str, int | None, int | None]]:
    """(what, restored, live) for Chroma's collections and embeddings and the templates."""
    restored_chroma = drill.chroma or ChromaFacts()
    has_chroma = drill.chroma is not None and live.chroma.ok
    return [
        (
            "chroma collections",
            restored_chroma.collections if drill.chroma else None,
            live.chroma.collections if has_chroma else None,
        ),
        (
            "chroma embeddings",
            restored_chroma.embeddings if drill.chroma else None,
            live.chroma.embeddings if has_chroma else None,
        ),
        ("template records", drill.templates, live.templates),
    ]
