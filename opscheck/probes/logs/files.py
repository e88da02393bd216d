"""A log and its rotated siblings, read once, remembered by content.

`app.log`, `app.log.1`, `app.log.2.gz` ... are found beside the configured path.
Each file's Summary is cached under a key made of its content's identity (a hash of
its first 64 KiB, decompressed, and its length), so a file logrotate renamed or
compressed is not read again, and the growing `app.log` is read only from where the
last run stopped (the 4 KiB before that point must still match). The cache lives in
the suite's own state directory, never in the target.

A large plain file is cut into ranges that meet between records; this process and
`workers - 1` spawned ones share them out, so both cores of a small VM are used.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from isal import igzip_threaded

from opscheck.probes import ProbeError
from opscheck.probes.logs.access import cache_tag, log_format_of, scan_access
from opscheck.probes.logs.scan import MAX_LINE, STAMPED, record_start, scan_app
from opscheck.probes.logs.summary import Summary

HEAD = 64 << 10
SPLIT_MIN = 64 << 20  # a plain file larger than this is read by several processes
RANGES_PER_WORKER = 16
RANGE_MIN = 32 << 20
CACHE_VERSION = 5  # 4: the numpy scanner (records kept whole); 5: histograms as lists


@dataclass(frozen=True)
class LogFile:
    path: Path
    compressed: bool
    size: int  # bytes on disk
    mtime: float
    active: bool = False  # the file the service is writing (no rotation suffix)


def siblings(path: str) -> list[LogFile]:
    """The log and its rotated copies (`.1`, `.2.gz` ...), newest first."""
    base = Path(path)
    try:
        names = os.listdir(base.parent)
    except FileNotFoundError:
        raise ProbeError(f"log dir {base.parent} does not exist") from None
    except PermissionError:
        raise ProbeError(f"log dir {base.parent}: permission denied") from None
    pattern = re.compile(re.escape(base.name) + r"(?:\.(\d+))?(\.gz)?$")
    found = []
    for name in names:
        m = pattern.fullmatch(name)
        if not m:
            continue
        p = base.parent / name
        try:
            st = p.stat()
        except OSError:
            continue
        if not p.is_file():
            continue
        active = m.group(1) is None and m.group(2) is None
        found.append(
            (int(m.group(1) or 0), LogFile(p, bool(m.group(2)), st.st_size, st.st_mtime, active))
        )
    return [f for _, f in sorted(found, key=lambda t: t[0])]


def _open(f: LogFile):
    if f.compressed:
        return igzip_threaded.open(f.path, "rb", threads=1)
    return open(f.path, "rb")


def content_key(f: LogFile) -> tuple[str, int]:
    """(hash of the first 64 KiB of content, content length) of a plain or gzip file."""
    with _open(f) as fh:
        head = fh.read(HEAD)
    if f.compressed:
        with open(f.path, "rb") as raw:
            raw.seek(-4, os.SEEK_END)
            length = int.from_bytes(raw.read(4), "little")  # ISIZE: length mod 2^32
    else:
        length = f.size
    return hashlib.sha256(head).hexdigest()[:32], length


class Cache:
    """Summaries on disk, one JSON file per content key."""

    def __init__(self, directory: Path | None):
        self.dir = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path | None:
        return self.dir / f"{key}.json" if self.dir else None

    def get(self, key: str) -> dict | None:
        p = self._path(key)
        if p is None or not p.exists():
            return None
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        return doc if doc.get("v") == CACHE_VERSION else None

    def put(self, key: str, doc: dict) -> None:
        p = self._path(key)
        if p is None:
            return
        doc = {"v": CACHE_VERSION, **doc}
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(doc))  # (dumps is the C encoder; dump is Python)
        os.replace(tmp, p)


def _scan_range(
    path: str,
    compressed: bool,
    start: int,
    end: int | None,
    name: str,
    line_base: int,
    fmt: str,
) -> dict:
    """One worker's share of a file: bytes [start, end), both on line boundaries."""
    f = LogFile(Path(path), compressed, 0, 0)
    with _open(f) as fh:
        if start:
            fh.seek(start)
        length = None if end is None else end - start
        if fmt.startswith("access"):  # "access:<log_format>"
            summary = scan_access(fh, name, length, line_base, log_format_of(fmt))
        else:
            summary = scan_app(fh, name, length, line_base)
    return summary.to_json()


def _ranges(size: int, parts: int) -> list[tuple[int, int | None]]:
    step = size // parts
    edges = [i * step for i in range(parts)]
    return [(edges[i], edges[i + 1] if i + 1 < parts else None) for i in range(parts)]


def _line_aligned_end(path: Path, end: int, whole_records: bool) -> int:
    """Where the line holding byte `end - 1` ends (ranges then meet on a newline); with
    `whole_records`, also past the lines that continue it (a traceback), so that the
    next range starts on a timestamped line."""
    with open(path, "rb") as fh:
        fh.seek(end)
        fh.readline()
        limit = fh.tell() + MAX_LINE
        while whole_records and fh.tell() < limit:
            at = fh.tell()
            line = fh.readline()
            if not line or STAMPED.match(line):
                fh.seek(at)
                break
        return fh.tell()


def summarize(
    path: str,
    cache_dir: Path | None,
    workers: int = 1,
    fmt: str = "app",
    split_min: int = SPLIT_MIN,
    access_format: str = "timed",
) -> tuple[Summary, dict]:
    """The merged Summary of a log and its rotated siblings, and how it was obtained.

    A file whose content was summarised before (same head hash and length, renamed or
    gzipped since) is not read; a plain file that only grew since the last pass (same
    device and inode, same 4 KiB before where the pass stopped) is read from there on.
    """
    if fmt == "access":
        fmt = f"access:{access_format}"  # nginx log_format, passed on to the scanner
    files = siblings(path)
    if not files:
        raise ProbeError(f"log {path} does not exist (nor any rotated copy)")
    for f in files:  # a file left out would make every count wrong: say so, plainly
        try:
            open(f.path, "rb").close()
        except OSError as exc:
            raise ProbeError(f"log {f.path}: cannot read: {exc.strerror}") from None
    cache = Cache(cache_dir)
    total = Summary()
    stats = {"files": len(files), "read_bytes": 0, "cached_files": 0, "resumed_files": 0}
    jobs: list[tuple[LogFile, str | None, int, int, Summary | None]] = []
    for f in files:
        try:
            key: str | None = "{}-{}-{}".format(cache_tag(fmt), *content_key(f))
        except (OSError, EOFError) as exc:
            total.notes.append(f"{f.path.name}: content not identified ({exc}); read whole")
            key = None
        cached = cache.get(key) if key else None
        if cached is not None:
            total.merge(Summary.from_json(cached["summary"]))
            stats["cached_files"] += 1
            continue
        active = None if f.compressed else cache.get(_active_key(f, fmt))
        if (
            active
            and active["offset"] <= f.size
            and active["tail"] == _tail_hash(f.path, active["offset"])
        ):
            before = Summary.from_json(active["summary"])
            stats["resumed_files"] += 1
            jobs.append((f, key, active["offset"], active["lines"], before))
        else:
            jobs.append((f, key, 0, 0, None))
    results = _run([(f, k, o, n) for f, k, o, n, _ in jobs], workers, fmt, split_min)
    for (f, key, offset, _, before), (summary, end) in zip(jobs, results, strict=True):
        stats["read_bytes"] += f.size if f.compressed else end - offset
        merged = before or Summary()
        merged.merge(summary)
        total.merge(merged)
        if f.active and fmt == "app":  # its last record, read now, not remembered
            last, read = _last_record(f, end, merged.lines)
            stats["read_bytes"] += read
            total.merge(last)
        if summary.notes:  # a file read short is not remembered
            continue
        unchanged = before is not None and end == offset  # remembered as it is
        if not f.compressed and not unchanged:
            cache.put(
                _active_key(f, fmt),
                {
                    "offset": end,
                    "tail": _tail_hash(f.path, end),
                    "lines": merged.lines,
                    "summary": merged.to_json(),
                },
            )
        if key and (f.compressed or end == f.size):
            cache.put(key, {"summary": merged.to_json()})
    return total, stats


def _last_record(f: LogFile, start: int, line_base: int) -> tuple[Summary, int]:
    """The app log's lines from `start` (where its last record begins) to its last
    newline. They are counted in this run but left for the next one to remember, as
    the record's traceback may still be being written."""
    end = _complete_end(f)
    if end <= start:
        return Summary(), 0
    task = (str(f.path), False, start, end, f.path.name, line_base, "app")
    return Summary.from_json(_scan_task(task)), end - start


def _active_key(f: LogFile, fmt: str) -> str:
    """A plain file's identity while it grows or is renamed: device and inode."""
    st = f.path.stat()
    return f"{cache_tag(fmt)}-inode-{st.st_dev}-{st.st_ino}"


def _run(
    jobs: list[tuple[LogFile, str | None, int, int]], workers: int, fmt: str, split_min: int
) -> list[tuple[Summary, int]]:
    """Scan every job; big plain files are split across workers, others run whole."""
    tasks: list[tuple[int, tuple]] = []
    ends: list[int] = []
    for i, (f, _key, offset, line_base) in enumerate(jobs):
        end = f.size if f.compressed else _complete_end(f, f.active and fmt == "app")
        ends.append(end)
        stop = None if f.compressed else end
        if f.compressed or workers < 2 or end - offset < split_min:
            tasks.append(
                (i, (str(f.path), f.compressed, offset, stop, f.path.name, line_base, fmt))
            )
            continue
        # many ranges, so that cores of uneven speed finish together
        parts = max(workers, min(RANGES_PER_WORKER * workers, (end - offset) // RANGE_MIN))
        cuts = (
            [offset]
            + [
                _line_aligned_end(f.path, offset + a, fmt == "app")
                for a, _ in _ranges(end - offset, parts)[1:]
            ]
            + [end]
        )
        cuts = list(itertools.accumulate(cuts, max))  # (never decreasing; equal when a
        # traceback longer than a range swallows a cut)
        for a, b in itertools.pairwise(cuts):
            if a == b:
                continue
            tasks.append((i, (str(f.path), False, a, b, f.path.name, line_base, fmt)))
    outputs = _execute([t for _, t in tasks], workers)
    merged: list[Summary] = [Summary() for _ in jobs]
    for (i, _), out in zip(tasks, outputs, strict=True):
        part = Summary.from_json(out)
        part.key_hits = [_shift(hit, merged[i].lines) for hit in part.key_hits]
        merged[i].merge(part)
    return [(merged[i], ends[i]) for i in range(len(jobs))]


def _execute(tasks: list[tuple], workers: int) -> list[dict]:
    """Every task's result. With several workers this process is one of them: the tasks
    go to `workers - 1` spawned processes largest first, while this process takes them
    from the other end, each one the pool has not started yet, until they meet."""
    if workers < 2 or len(tasks) < 2:
        return [_scan_task(t) for t in tasks]
    order = sorted(range(len(tasks)), key=lambda i: -_task_bytes(tasks[i]))
    outputs: list[dict] = [{} for _ in tasks]
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded pytest process
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=ctx) as pool:
        futures = [(i, pool.submit(_scan_task, tasks[i])) for i in order]
        for i, future in reversed(futures):
            if not future.cancel():  # the pool has it, and every task before it
                break
            outputs[i] = _scan_task(tasks[i])
        for i, future in futures:
            if future.cancelled():
                continue
            try:
                outputs[i] = future.result()
            except (BrokenProcessPool, OSError):  # a worker died (OOM killer ...): read here
                outputs[i] = _scan_task(tasks[i])
    return outputs


def _task_bytes(task: tuple) -> int:
    """About how many bytes a task reads (a gzip file: 6 times its size on disk)."""
    path, compressed, start, end = task[:4]
    return 6 * os.path.getsize(path) if compressed else end - start


def _shift(hit: str, lines: int) -> str:
    """A "file:line" key hit of a later range, renumbered from the file's start."""
    name, _, line = hit.rpartition(":")
    return f"{name}:{int(line) + lines}"


def _scan_task(task: tuple) -> dict:
    path, compressed, start, end, name, line_base, fmt = task
    try:
        return _scan_range(path, compressed, start, end, name, line_base, fmt)
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        s = Summary(notes=[f"{name}: read stopped early ({exc})"])
        return s.to_json()


def _tail_hash(path: Path, offset: int) -> str:
    """A hash of the 4 KiB before `offset`: where the last pass stopped must be unchanged."""
    with open(path, "rb") as fh:
        fh.seek(max(0, offset - 4096))
        return hashlib.sha256(fh.read(min(4096, offset))).hexdigest()[:32]


def _complete_end(f: LogFile, whole_records: bool = False) -> int:
    """The byte after the last newline: a line still being written is left for next time.
    (A rotated file's unterminated last line is read with the next pass of its copy.)
    With `whole_records` (the app log being written), where its last record begins:
    that record's traceback may still be coming (see `_last_record`)."""
    with open(f.path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        pos = size
        while pos > 0:
            step = min(HEAD, pos)
            fh.seek(pos - step)
            block = fh.read(step)
            nl = block.rfind(b"\n")
            if nl < 0:
                pos -= step
                continue
            end = pos - step + nl + 1
            if not whole_records:
                return end
            fh.seek(max(0, end - 1 - MAX_LINE))
            tail = b"\n" + fh.read(end - fh.tell())  # (a newline as if before the file)
            last = record_start(tail, len(tail) - 1)
            return end - (len(tail) - 1 - last) if last else end
        return 0
