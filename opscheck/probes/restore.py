"""A restore drill: unpack a backup set into a scratch dir and read what came back.

Never touches the live paths: everything lands in a fresh temporary directory below
`paths.scratch_dir` (or the system's temp dir) that is removed when the drill ends,
whether it passed or not. The live store and template data are only read.

Backups on another host (`fs`: a `hostfiles.RemoteFiles`) are streamed from it into the
same reading and extraction here; nothing is written on that host.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from opscheck import lifecycle
from opscheck.probes import ProbeError
from opscheck.probes.archives import (
    ChromaFacts,
    Remote,
    ScratchError,
    Verified,
    chroma_facts,
    extract,
    load_json,
    scratch_problem,
    template_records,
    verify,
    verify_json,
)
from opscheck.probes.backups import BackupFile, BackupSet, kind_of
from opscheck.probes.noatime import copy_file, read_bytes

POOL_MIN_BYTES = 128 << 20  # less to read: one process (a spawn costs ~0.25 s, a process
# reads ~300 MB/s of .tar.gz: the pool pays from ~150 MB on 2 cores)


@dataclass
class Drill:
    """What restoring one set gave back."""

    label: str
    seconds: float = 0.0
    results: dict[str, Verified] = field(default_factory=dict)
    env_keys: list[str] = field(default_factory=list)  # names only, never values
    has_requirements: bool = False
    templates: int | None = None

    @property
    def errors(self) -> list[str]:
        return [f"{Path(r.path).name}: {r.error}" for r in self.results.values() if not r.ok]

    @property
    def chroma(self) -> ChromaFacts | None:
        """The restored store's facts, when its archive restored and its SQLite read."""
        result = self.results.get("chroma_db")
        return result.chroma if result is not None and result.chroma_readable else None

    @property
    def segments(self) -> set[str]:
        """HNSW segment folders restored beside chroma.sqlite3."""
        result = self.results.get("chroma_db")
        return result.segments if result is not None else set()

    def failed(self, kind: str) -> bool:
        """The archive of `kind` did not restore (its error is among `errors`)."""
        result = self.results.get(kind)
        return result is not None and not result.ok


@dataclass(frozen=True)
class Live:
    chroma: ChromaFacts
    templates: int | None
    templates_error: str = ""
    segments: frozenset[str] | None = None  # None: the live store's folder could not be listed


def segment_dirs(chroma_dir: Path) -> frozenset[str] | None:
    """The HNSW segment folders of a Chroma store (named by UUID, holding header.bin);
    None when the store's folder cannot be listed."""
    try:
        entries = list(os.scandir(chroma_dir))
    except OSError:
        return None
    return frozenset(e.name for e in entries if os.path.isfile(os.path.join(e.path, "header.bin")))


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


def drill(bset: BackupSet, scratch_dir: str, max_bytes: int, fs=None) -> Drill:
    """Restore every file of `bset` below a fresh scratch dir, then remove it (an
    interrupted run removes it too: it is registered with the run's lifecycle); `fs`:
    the files of the host holding the set (None: this machine's)."""
    result = Drill(bset.label)
    start = time.perf_counter()
    with _run_scratch(scratch_dir, "opscheck-restore-") as tmp:
        try:
            for kind, f in bset.files.items():
                dest = tmp / kind
                _mkdir(dest)
                result.results[kind] = _restore_one(f, dest, max_bytes, remote(fs, f.size))
        except ScratchError as exc:
            raise ProbeError(f"scratch dir {tmp.parent}: {exc}") from None
        _read_restored(tmp, result)
    result.seconds = time.perf_counter() - start
    return result


@contextmanager
def _run_scratch(scratch_dir: str, prefix: str) -> Iterator[Path]:
    """A fresh dir below `scratch_dir` (or the system's temp dir), registered as the run's
    scratch while it lives and removed after; one that cannot be made is a ProbeError
    naming the scratch dir, not a backup."""
    root = Path(scratch_dir) if scratch_dir else Path(tempfile.gettempdir())
    try:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    except OSError as exc:
        raise ProbeError(f"scratch dir {root}: {exc.strerror or exc}") from None
    with lifecycle.scratch(tmp):
        try:
            yield tmp
        finally:
            lifecycle.remove_tree(tmp)


def _mkdir(path: Path) -> None:
    try:
        path.mkdir()
    except OSError as exc:
        raise scratch_problem(exc, f"making {path.name}/") from None


def remote(fs, size: int) -> Remote | None:
    """A file of `fs` as the archive readers take it: None on this machine."""
    return Remote(fs, size) if getattr(fs, "remote", False) else None


def _restore_one(f: BackupFile, dest: Path, max_bytes: int, at: Remote | None) -> Verified:
    if f.kind == "template_data" and at is not None:
        verified, data = load_json(f.path, max_bytes, at)
        if verified.ok:
            _in_scratch(dest / f.path.name, data)
        return verified
    if f.kind == "template_data":
        verified = verify_json(f.path, max_bytes)
        if verified.ok:
            try:
                copy_file(f.path, dest / f.path.name)
            except OSError as exc:
                if exc.filename == str(f.path):
                    raise
                raise scratch_problem(exc, f"writing {f.path.name}") from None
        return verified
    return extract(f.path, dest, max_bytes, chroma=f.kind == "chroma_db", remote=at)


def _in_scratch(target: Path, data: bytes) -> None:
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise scratch_problem(exc, f"writing {target.name}") from None


def _read_restored(tmp: Path, result: Drill) -> None:
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
    facts = _live_facts(Path(chroma_dir) / "chroma.sqlite3")
    try:
        templates, error = template_records(read_bytes(template_data)), ""
    except OSError as exc:
        templates, error = None, f"{template_data}: {exc.strerror or exc}"
    except ValueError as exc:
        templates, error = None, f"{template_data}: invalid JSON: {exc}"
    return Live(facts, templates, error, segment_dirs(Path(chroma_dir)))


def _live_facts(db: Path) -> ChromaFacts:
    try:
        os.stat(db)
    except FileNotFoundError:
        return ChromaFacts(error=f"{db.name} does not exist")
    except OSError as exc:
        return ChromaFacts(error=f"{db.name}: {exc.strerror or exc}")
    return chroma_facts(db)


def verify_file(path: Path, max_bytes: int, scratch_dir: str, at: Remote | None = None) -> Verified:
    """Read one backup file through, whatever its kind (`at`: on another host)."""
    if path.name.endswith(".json"):
        return verify_json(path, max_bytes, at)
    scratch = Path(scratch_dir) if scratch_dir else None
    return verify(path, max_bytes, scratch, chroma=kind_of(path.name) == "chroma_db", remote=at)


def verify_all(paths: list[Path], max_bytes: int, scratch_dir: str, workers: int) -> list[Verified]:
    """Read many backup files through, in the given order; on `workers` processes when
    there is enough to read (POOL_MIN_BYTES). Their scratch lies in one dir of the run's,
    so that an interrupted run removes it even when a worker was killed."""
    with _run_scratch(scratch_dir, "opscheck-verify-run-") as tmp:
        try:
            return _verify_all(paths, max_bytes, str(tmp), workers)
        except ScratchError as exc:
            raise ProbeError(f"scratch dir {tmp.parent}: {exc}") from None


MAX_STREAMS = 4  # a host's archives streamed at once (sshd's MaxSessions is 10; one link)


def verify_backups(
    files: list[BackupFile], max_bytes: int, scratch_dir: str, workers: int, fs=None
) -> list[Verified]:
    """`verify_all` over files of an inventory; `fs`: the files of the host holding them
    (None or local: this machine's). A host's files are streamed `workers` at a time
    (threads: each waits on its stream, inflates outside the GIL), in the given order."""
    if remote(fs, 0) is None:
        return verify_all([f.path for f in files], max_bytes, scratch_dir, workers)

    def one(f: BackupFile) -> Verified:
        return verify_file(f.path, max_bytes, str(tmp), remote(fs, f.size))

    with _run_scratch(scratch_dir, "opscheck-verify-run-") as tmp:
        pool = ThreadPoolExecutor(max(1, min(workers, MAX_STREAMS)), "opscheck-backup-stream")
        try:
            return list(pool.map(one, files))
        except ScratchError as exc:
            raise ProbeError(f"scratch dir {tmp.parent}: {exc}") from None
        finally:  # interrupted: no file not yet begun is begun (its stream would reconnect)
            pool.shutdown(wait=True, cancel_futures=True)


def _verify_all(paths: list[Path], max_bytes: int, scratch: str, workers: int) -> list[Verified]:
    if workers <= 1 or len(paths) <= 1 or sum(map(_size, paths)) < POOL_MIN_BYTES:
        return [verify_file(p, max_bytes, scratch) for p in paths]
    biggest_first = sorted(paths, key=_size, reverse=True)  # keeps both workers busy to the end
    with lifecycle.process_pool(workers, "backup reader") as pool:
        futures = {p: pool.submit(verify_file, p, max_bytes, scratch) for p in biggest_first}
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


def missing_segments(archive: Verified | None, live: frozenset[str] | None) -> list[str]:
    """HNSW segment folders a readable Chroma archive lacks: the live store's folders that
    the archive's own SQLite lists (one made after the backup is not expected in it); with
    no live store to read, every VECTOR segment its SQLite lists. [] when it is unreadable."""
    if archive is None or not archive.chroma_readable:
        return []
    listed = archive.chroma.vector_segments
    if live is None:
        return sorted((listed or frozenset()) - archive.segments)
    return sorted((live if listed is None else live & listed) - archive.segments)


def count_pairs(drill: Drill, live: Live) -> list[tuple[str, str, int | None, int | None]]:
    """(kind, what, restored, live) for Chroma's collections and embeddings and the templates."""
    restored, here = drill.chroma, live.chroma if live.chroma.ok else None
    return [
        (
            "chroma_db",
            "chroma collections",
            restored.collections if restored else None,
            here.collections if here else None,
        ),
        (
            "chroma_db",
            "chroma embeddings",
            restored.embeddings if restored else None,
            here.embeddings if here else None,
        ),
        ("template_data", "template records", drill.templates, live.templates),
    ]
