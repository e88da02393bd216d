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

import bz2
import hashlib
import io
import itertools
import json
import lzma
import os
import re
import tempfile
import zlib
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from isal import igzip, igzip_threaded

from opscheck import lifecycle
from opscheck.probes import ProbeError
from opscheck.probes.hostfiles import Entry, LocalFiles, RemoteFiles
from opscheck.probes.logs.access import LEAD_IN, cache_tag, log_format_of, scan_access
from opscheck.probes.logs.scan import MAX_LINE, STAMPED, record_start, scan_app
from opscheck.probes.logs.summary import Summary
from opscheck.probes.noatime import open_binary, open_decoded, read_text

HEAD = 64 << 10
RAW_HEAD = 2 * HEAD  # of a compressed file on another host: enough for HEAD decompressed
TAIL = HEAD  # of a plain file on another host, read with the heads (where its lines end)
INFLATE = 4  # a compressed copy's stream gets the time of this many times its size
SPLIT_MIN = 64 << 20  # a plain file larger than this is read by several processes
RANGES_PER_WORKER = 16
RANGE_MIN = 32 << 20
POOL_MIN_BYTES = 256 << 20  # less work is read in this process alone: a spawned worker
# costs ~0.25 s (interpreter and numpy), this process scans ~400 MB/s (docs: measured)
CACHE_VERSION = 5  # 4: the numpy scanner (records kept whole); 5: histograms as lists


CODECS = {".gz": "gz", ".xz": "xz", ".bz2": "bz2", ".zst": "zst"}
# What logrotate makes of "app.log": app.log.1, app.log.2.gz (numbered), or with
# `dateext` app.log-20261201, app.log-2026120103, app.log-20261130-1764460800.xz ...
ROTATED = re.compile(r"(?:\.(\d+)|-(\d{8}(?:\d{2})?(?:-\d+)?))?(\.gz|\.xz|\.bz2|\.zst)?")


@dataclass(frozen=True)
class LogFile:
    path: Path
    codec: str  # "" (plain), "gz", "xz", "bz2" or "zst"
    size: int  # bytes on disk
    mtime: float
    active: bool = False  # the file the service is writing (no rotation suffix)
    dev: int = 0
    ino: int = 0

    @property
    def compressed(self) -> bool:
        return bool(self.codec)


def siblings(path: str, olddirs: tuple[str, ...] = (), fs: Files | None = None) -> list[LogFile]:
    """The log and its rotated copies (`.1`, `.2.gz`, `-20261130.gz` ...) beside it and in
    logrotate's `olddir`s, the active log first, on this machine or on the host of `fs`.
    A name that looks rotated but is not one logrotate gives (another suffix, an unknown
    compression), or an entry that is not a regular file, is a ProbeError: its lines would
    be missing from every count."""
    fs = fs or LocalFiles()
    base = Path(path)
    found: list[tuple[tuple, LogFile]] = []
    for directory in (base.parent, *(base.parent / d for d in olddirs)):
        what = "log dir" if directory == base.parent else "logrotate olddir"
        try:
            entries = fs.entries(str(directory), base.name)
        except FileNotFoundError:
            raise ProbeError(f"{fs.where}{what} {directory} does not exist") from None
        except OSError as exc:
            raise ProbeError(f"{fs.where}{what} {directory}: {exc.strerror}") from None
        for entry in entries:
            name = entry.name
            if not name.startswith(base.name):
                continue
            rest = name[len(base.name) :]
            if rest and rest[0] not in ".-":
                continue  # another log ("app.log_err"), not a copy of this one
            m = ROTATED.fullmatch(rest)
            if m is None:
                raise ProbeError(
                    f"{fs.where}{directory / name}: not a name logrotate gives {base.name} "
                    f"(numbered, dateext, or compressed with {', '.join(CODECS)}): its lines "
                    "cannot be read"
                )
            active = not rest
            if active and directory != base.parent:
                continue
            order = (not active, m.group(1) is None, _order(m))
            found.append((order, _entry(directory / name, m, active, entry, fs)))
    return [f for _, f in sorted(found, key=lambda t: t[0])]


def _order(m: re.Match[str]) -> int | str:
    """Newest first: a smaller rotation number, or a later date (sorted descending)."""
    if m.group(1) is not None:
        return int(m.group(1))
    return "".join(chr(0x7F - ord(c)) for c in m.group(2) or "")


def _entry(p: Path, m: re.Match[str], active: bool, e: Entry, fs: Files) -> LogFile:
    if e.kind != "f":
        kind = _KINDS.get(e.kind, "not a regular file")
        raise ProbeError(
            f"{fs.where}log {p} is {kind}, not a regular file: its lines cannot be read"
        )
    return LogFile(p, CODECS.get(m.group(3) or "", ""), e.size, e.mtime, active, e.dev, e.ino)


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged plain or compressed log raises (zstd's own when installed)."""
    errors: tuple[type[BaseException], ...] = (
        EOFError,
        lzma.LZMAError,
        OSError,
        ValueError,
        zlib.error,
    )
    try:
        import zstandard
    except ImportError:
        return errors
    return (*errors, zstandard.ZstdError)


READ_ERRORS = _read_errors()

_KINDS = {
    "p": "a FIFO",
    "d": "a directory",
    "s": "a socket",
    "c": "a character device",
    "b": "a block device",
    "l": "a symlink to nothing",
}
Files = LocalFiles | RemoteFiles


def olddirs(logrotate_conf: str, fs: Files | None = None) -> tuple[str, ...]:
    """The `olddir` directories a logrotate file names (relative ones are taken from the
    log's directory, as logrotate does); none if the file is absent or unreadable."""
    fs = fs or LocalFiles()
    try:
        if not logrotate_conf:
            text = ""
        elif fs.remote:
            text = fs.read(logrotate_conf, 0, 1 << 20).decode("utf-8", "replace")
        else:
            text = read_text(logrotate_conf, errors="replace")
    except FileNotFoundError:
        return ()
    except OSError as exc:  # its olddir's copies would be missing from every count
        raise ProbeError(
            f"{fs.where}logrotate file {logrotate_conf}: cannot read it to find the rotated "
            f"copies' olddir: {exc.strerror or exc}"
        ) from None
    dirs = [ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("olddir ")]
    return tuple(dict.fromkeys(d for d in dirs if d))


def _open(f: LogFile):
    """The file's content (decompressed), read without touching its atime."""
    if f.codec == "gz":
        return open_decoded(f.path, lambda raw: igzip_threaded.open(raw, "rb", threads=1))
    if f.codec:
        return open_decoded(f.path, _DECODERS[f.codec])
    return open_binary(f.path)


def _xz(raw):
    return lzma.LZMAFile(raw)


def _zstd(raw):
    import zstandard

    return zstandard.open(raw, "rb")


_DECODERS = {
    "gz": lambda raw: igzip.open(raw, "rb"),
    "xz": _xz,
    "bz2": lambda raw: bz2.BZ2File(raw),
    "zst": _zstd,
}


def _head(f: LogFile, fs: Files) -> bytes:
    """The first HEAD bytes of the file's content (decompressed)."""
    if not fs.remote:
        with _open(f) as fh:
            return fh.read(HEAD)
    if not f.codec:
        return fs.read(str(f.path), 0, HEAD)
    raw = fs.read(str(f.path), 0, RAW_HEAD)
    with _DECODERS[f.codec](io.BytesIO(raw)) as fh:
        try:
            return fh.read(HEAD)
        except EOFError:  # the prefix ends inside the stream: what it holds, decoded
            if len(raw) < RAW_HEAD:
                raise
    with fs.open(str(f.path), 0, f.size) as raw_stream, _DECODERS[f.codec](raw_stream) as fh:
        return fh.read(HEAD)


def content_key(f: LogFile, fs: Files | None = None) -> tuple[str, int | str]:
    """(hash of the first 64 KiB of content, content length) of a plain or gzip file;
    for xz, bzip2 and zstd, whose length is not stored, the length on disk ("z<bytes>")."""
    fs = fs or LocalFiles()
    head = _head(f, fs)
    if f.codec == "gz":
        trailer = fs.read(str(f.path), max(0, f.size - 4), 4)
        length: int | str = int.from_bytes(trailer, "little")  # ISIZE: mod 2^32
    elif f.codec:
        length = f"z{f.size}"
    else:
        length = f.size
    return hashlib.sha256(head).hexdigest()[:32], length


def _first_reads(files: list[LogFile]) -> list[tuple[str, int, int]]:
    """What `_summarize` reads of each file before it scans: heads, gzip trailers, and
    the tail of a plain file (where its last line ends): one command for all on a host."""
    ranges = []
    for f in files:
        p = str(f.path)
        ranges.append((p, 0, RAW_HEAD if f.codec else HEAD))
        if f.codec == "gz":
            ranges.append((p, max(0, f.size - 4), 4))
        elif not f.codec:
            ranges.append((p, max(0, f.size - TAIL), TAIL))
    return ranges


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
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(doc))  # (dumps is the C encoder; dump is Python)
            os.replace(tmp, p)
        except OSError as exc:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise ProbeError(
                f"cannot write the suite's log cache in {self.dir}: {exc.strerror or exc}"
            ) from None


def _scan_range(
    path: str,
    codec: str,
    start: int,
    end: int | None,
    name: str,
    line_base: int,
    fmt: str,
    tz: str = "",
) -> dict:
    """One worker's share of a file: bytes [start, end), both on line boundaries."""
    f = LogFile(Path(path), codec, 0, 0)
    with _open(f) as fh:
        if start:
            fh.seek(start)
        return _scan_stream(fh, start, end, name, line_base, fmt, tz)


def _scan_stream(fh, start: int, end: int | None, name: str, line_base: int, fmt: str, tz: str):
    length = None if end is None else end - start
    if fmt.startswith("access"):  # "access:<log_format>"
        summary = scan_access(fh, name, length, line_base, log_format_of(fmt))
    else:
        summary = scan_app(fh, name, length, line_base, tz)
    return summary.to_json()


def _scan_remote(fs: RemoteFiles, task: tuple, size: int) -> dict:
    """A task read from another host: the bytes streamed from `start` (a compressed
    file whole, decompressed here), scanned as they arrive. An access log resumed
    mid-file streams its LEAD_IN bytes before `start` too (its 60 s windows see them)."""
    path, codec, start, end, name, line_base, fmt, tz = task
    lead = min(start, LEAD_IN) if fmt.startswith("access") and not codec else 0
    length = None if codec or end is None else end - start + lead
    hint = size * INFLATE if codec else size  # (decompressed and scanned as it streams)
    with fs.open(path, start - lead, hint, length) as raw:
        if codec:
            with _DECODERS[codec](raw) as fh:
                return _scan_stream(fh, 0, None, name, line_base, fmt, tz)
        fh = _Resumed(raw, start - lead, start) if lead else raw
        return _scan_stream(fh, start, end, name, line_base, fmt, tz)


def _read_exactly(stream, n: int) -> bytes:
    """`n` bytes of a stream (fewer only at its end): a pipe gives 64 KiB a read."""
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class _Resumed:
    """A stream that began `start - base` bytes early, positioned at `start`: reads go
    on from there; `seek` back into those first bytes reads them (the lead-in)."""

    def __init__(self, stream, base: int, start: int) -> None:
        self._stream, self._base, self._start = stream, base, start
        self._lead = _read_exactly(stream, start - base)
        if len(self._lead) != start - base:
            raise EOFError(f"the file ended {start - base - len(self._lead)} bytes early")
        self._pos = start

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or not (self._base <= pos <= self._start or pos == self._pos):
            raise OSError(f"cannot seek a stream to {pos}")
        self._pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        if self._pos < self._start:
            at = self._pos - self._base
            stop = len(self._lead) if n is None or n < 0 else min(len(self._lead), at + n)
            self._pos += stop - at
            return self._lead[at:stop]
        data = self._stream.read(n)
        self._pos += len(data)
        return data

    def readinto(self, buf) -> int:
        if self._pos < self._start:
            data = self.read(len(buf))
            buf[: len(data)] = data
            return len(data)
        got = self._stream.readinto(buf)
        self._pos += got
        return got


def _ranges(size: int, parts: int) -> list[tuple[int, int | None]]:
    step = size // parts
    edges = [i * step for i in range(parts)]
    return [(edges[i], edges[i + 1] if i + 1 < parts else None) for i in range(parts)]


def _line_aligned_end(path: Path, end: int, whole_records: bool) -> int:
    """Where the line holding byte `end - 1` ends (ranges then meet on a newline); with
    `whole_records`, also past the lines that continue it (a traceback), so that the
    next range starts on a timestamped line."""
    with open_binary(path) as fh:
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
    tz: str = "",
    olddirs: tuple[str, ...] = (),
    access_format: str = "timed",
    fs: Files | None = None,
) -> tuple[Summary, dict]:
    """The merged Summary of a log and its rotated siblings (on this machine, or on the
    host of `fs`), and how it was obtained.

    A file whose content was summarised before (same head hash and length, renamed or
    gzipped since) is not read; a plain file that only grew since the last pass (same
    device and inode, same 4 KiB before where the pass stopped) is read from there on.
    App log stamps are wall-clock times in zone `tz` ("": this machine's zone). A file
    that vanishes while it is read (rotated meanwhile) is a ProbeError saying so.
    """
    if fmt == "access":
        fmt = f"access:{access_format}"  # nginx log_format, passed on to the scanner
    fs = fs or LocalFiles()
    try:
        return _summarize(path, cache_dir, workers, fmt, split_min, tz, olddirs, fs)
    except FileNotFoundError as exc:
        raise ProbeError(
            f"{fs.where}log {exc.filename or path}: vanished while it was read (rotated or "
            "deleted meanwhile); run again"
        ) from None


def _summarize(
    path: str,
    cache_dir: Path | None,
    workers: int,
    fmt: str,
    split_min: int,
    tz: str,
    olddirs: tuple[str, ...],
    fs: Files,
) -> tuple[Summary, dict]:
    files = siblings(path, olddirs, fs)
    if not files:
        raise ProbeError(f"{fs.where}log {path} does not exist (nor any rotated copy)")
    fs.prefetch(_first_reads(files))
    for f in files:  # a file left out would make every count wrong: say so, plainly
        try:
            if fs.remote:
                fs.read(str(f.path), 0, 0)
            else:
                open_binary(f.path).close()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise ProbeError(f"{fs.where}log {f.path}: cannot read: {exc.strerror}") from None
    cache = Cache(cache_dir)
    # a zone gives other UTC hours, a log_format other fields: each its own cache entries
    kind = f"{fmt}-{zone_id(tz)}" if fmt == "app" else cache_tag(fmt)
    total = Summary()
    stats = {"files": len(files), "read_bytes": 0, "cached_files": 0, "resumed_files": 0}
    jobs: list[tuple[LogFile, str | None, int, int, Summary | None]] = []
    looked: list[tuple[LogFile, str | None, dict | None]] = []
    for f in files:
        try:
            key: str | None = "{}-{}-{}".format(kind, *content_key(f, fs))
        except READ_ERRORS as exc:
            total.notes.append(f"{f.path.name}: content not identified ({exc}); read whole")
            key = None
        cached = cache.get(key) if key else None
        if cached is not None:
            total.merge(Summary.from_json(cached["summary"]))
            stats["cached_files"] += 1
            continue
        active = None if f.compressed else cache.get(_active_key(f, kind))
        looked.append((f, key, active))
    fs.prefetch([_tail_range(f, a["offset"]) for f, _, a in looked if a and a["offset"] <= f.size])
    for f, key, active in looked:
        if (
            active
            and active["offset"] <= f.size
            and active["tail"] == _tail_hash(f, active["offset"], fs)
        ):
            before = Summary.from_json(active["summary"])
            stats["resumed_files"] += 1
            jobs.append((f, key, active["offset"], active["lines"], before))
        else:
            jobs.append((f, key, 0, 0, None))
    results = _run([(f, k, o, n) for f, k, o, n, _ in jobs], workers, fmt, split_min, tz, fs)
    parts = [total]  # merged once at the end, into the largest (no copy of it)
    for (f, key, offset, _, before), (summary, end) in zip(jobs, results, strict=True):
        stats["read_bytes"] += f.size if f.compressed else end - offset
        merged = summary
        if before is not None:
            before.merge(summary)
            merged = before
        parts.append(merged)
        if f.active and fmt == "app":  # its last record, read now, not remembered
            last, read = _last_record(f, end, merged.lines, tz, fs)
            stats["read_bytes"] += read
            parts.append(last)
        else:
            read = 0
        if not f.compressed and f.size - end - read > MAX_LINE:
            total.notes.append(
                f"{f.path.name}: its last {f.size - end - read} bytes hold no newline (a line "
                f"over {MAX_LINE >> 20} MiB, or not text): not read"
            )
        if summary.notes:  # a file read short is not remembered
            continue
        unchanged = before is not None and end == offset  # remembered as it is
        if not f.compressed and not unchanged:
            cache.put(
                _active_key(f, kind),
                {
                    "offset": end,
                    "tail": _tail_hash(f, end, fs),
                    "lines": merged.lines,
                    "summary": merged.to_json(),
                },
            )
        if key and (f.compressed or end == f.size):
            cache.put(key, {"summary": merged.to_json()})
    whole = max(parts, key=lambda part: len(part.hours))
    for part in parts:
        if part is not whole:
            whole.merge(part)
    return whole, stats


def _last_record(f: LogFile, start: int, line_base: int, tz: str, fs: Files) -> tuple[Summary, int]:
    """The app log's lines from `start` (where its last record begins) to its last
    newline. They are counted in this run but left for the next one to remember, as
    the record's traceback may still be being written."""
    end = _complete_end(f, fs=fs)
    if end <= start:
        return Summary(), 0
    task = (str(f.path), "", start, end, f.path.name, line_base, "app", tz)
    return Summary.from_json(_scan_task(task, fs, f.size)), end - start


def _active_key(f: LogFile, kind: str) -> str:
    """A plain file's identity while it grows or is renamed: device and inode."""
    return f"{kind}-inode-{f.dev}-{f.ino}"


def zone_id(tz: str) -> str:
    """A name for the zone stamps are read in: `tz`, or this machine's zone."""
    if not tz:
        try:
            tz = os.environ.get("TZ") or os.readlink("/etc/localtime").split("zoneinfo/")[-1]
        except OSError:
            tz = "local"
    return re.sub(r"[^A-Za-z0-9+-]", "_", tz)  # a file name part


def _run(
    jobs: list[tuple[LogFile, str | None, int, int]],
    workers: int,
    fmt: str,
    split_min: int,
    tz: str,
    fs: Files,
) -> list[tuple[Summary, int]]:
    """Scan every job; big plain files are split across workers, others run whole (on
    another host every file is one stream, read here as it comes)."""
    tasks: list[tuple[int, tuple]] = []
    ends: list[int] = []
    for i, (f, _key, offset, line_base) in enumerate(jobs):
        end = f.size if f.compressed else _complete_end(f, f.active and fmt == "app", fs)
        ends.append(end)
        stop = None if f.compressed else end
        if fs.remote or f.compressed or workers < 2 or end - offset < split_min:
            tasks.append((i, (str(f.path), f.codec, offset, stop, f.path.name, line_base, fmt, tz)))
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
            tasks.append((i, (str(f.path), "", a, b, f.path.name, line_base, fmt, tz)))
    if fs.remote:
        sizes = [jobs[i][0].size for i, _ in tasks]
        outputs = [_scan_task(t, fs, n) for (_, t), n in zip(tasks, sizes, strict=True)]
    else:
        outputs = _execute([t for _, t in tasks], workers)
    merged: list[Summary] = [Summary() for _ in jobs]
    for (i, _), out in zip(tasks, outputs, strict=True):
        part = Summary.from_json(out)
        if not merged[i].lines and not merged[i].hours:  # a file's first part: no copy
            merged[i] = part
            continue
        part.key_hits = [_shift(hit, merged[i].lines) for hit in part.key_hits]
        merged[i].merge(part)
    return [(merged[i], ends[i]) for i in range(len(jobs))]


def _execute(tasks: list[tuple], workers: int) -> list[dict]:
    """Every task's result. With several workers this process is one of them: the tasks
    go to `workers - 1` spawned processes largest first, while this process takes them
    from the other end, each one the pool has not started yet, until they meet. Less
    than POOL_MIN_BYTES of work is read here alone: a spawned worker costs more than it
    saves below that."""
    sizes = [_task_bytes(t) for t in tasks]
    if workers < 2 or len(tasks) < 2 or sum(sizes) < POOL_MIN_BYTES:
        return [_scan_task(t) for t in tasks]
    order = sorted(range(len(tasks)), key=lambda i: -sizes[i])
    outputs: list[dict] = [{} for _ in tasks]
    with lifecycle.process_pool(workers - 1, "log scanner") as pool:
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
    path, codec, start, end = task[:4]
    return 6 * os.path.getsize(path) if codec else end - start


def _shift(hit: str, lines: int) -> str:
    """A "file:line" key hit of a later range, renumbered from the file's start."""
    name, _, line = hit.rpartition(":")
    return f"{name}:{int(line) + lines}"


def _scan_task(task: tuple, fs: Files | None = None, size: int = 0) -> dict:
    name = task[4]
    try:
        if fs is not None and fs.remote:
            return _scan_remote(fs, task, size)
        return _scan_range(*task)
    except READ_ERRORS as exc:
        s = Summary(notes=[f"{name}: read stopped early ({exc})"])
        return s.to_json()


def _tail_range(f: LogFile, offset: int) -> tuple[str, int, int]:
    """The 4 KiB before `offset`: where the last pass stopped must be unchanged."""
    return str(f.path), max(0, offset - 4096), min(4096, offset)


def _tail_hash(f: LogFile, offset: int, fs: Files) -> str:
    return hashlib.sha256(fs.read(*_tail_range(f, offset))).hexdigest()[:32]


def _complete_end(f: LogFile, whole_records: bool = False, fs: Files | None = None) -> int:
    """The byte after the last newline: a line still being written is left for next time.
    (A rotated file's unterminated last line is read with the next pass of its copy.)
    With `whole_records` (the app log being written), where its last record begins:
    that record's traceback may still be coming (see `_last_record`)."""
    fs = fs or LocalFiles()
    path, size = str(f.path), f.size if fs.remote else _size(f.path)
    pos = size
    while pos > 0:
        step = min(HEAD, pos)
        block = fs.read(path, pos - step, step)
        nl = block.rfind(b"\n")
        if nl < 0:
            pos -= step
            continue
        end = pos - step + nl + 1
        if not whole_records:
            return end
        near = fs.read(path, max(0, end - TAIL), min(TAIL, end))  # the usual case: nearby
        if end <= TAIL:
            near = b"\n" + near  # (a newline as if before the file)
        last = record_start(near, len(near) - 1)
        if not last:
            start = max(0, end - 1 - MAX_LINE)
            near = b"\n" + fs.read(path, start, end - start)
            last = record_start(near, len(near) - 1)
        return end - (len(near) - 1 - last) if last else end
    return 0


def _size(path: Path) -> int:
    with open_binary(path) as fh:
        return fh.seek(0, os.SEEK_END)
