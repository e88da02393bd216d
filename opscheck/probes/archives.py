"""Read backup archives through to the end, and extract them safely.

`verify` streams a `.tar.gz` once: the gzip layer (CRC and length checked by ISA-L's
inflate in a background thread, so inflating and tar walking use two cores), every
tar member's data to its last byte, the end-of-archive marker, and for a Chroma
store the SQLite file itself (`PRAGMA integrity_check`, collection and embedding
rows, the HNSW segments it lists) and the segment folders beside it. A Chroma archive
that holds no `chroma.sqlite3` (the guide's `tar -C / app/chroma_db` over a symlinked
dir stores only the link) is a failure naming what it holds instead. `extract` does the
same while writing the members below a scratch root. Hostile members (absolute paths,
`..`, devices, more bytes than the limit) are refused before anything of theirs is
written; symlinks leaving the root are never written and fail the archive after its walk.

An archive on another host (`Remote`: its `hostfiles.RemoteFiles` and listed size) is
streamed through the same walk, never copied here whole; a stream that failed, stalled
or was cut fails the archive naming the host, whatever the walk made of the bytes.
"""

from __future__ import annotations

import json
import os
import posixpath
import sqlite3
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from isal import igzip_threaded

from opscheck.lifecycle import remove_tree
from opscheck.probes import ProbeError
from opscheck.probes.noatime import open_decoded, read_bytes

CHUNK = 1 << 20
PIECE = 1 << 16  # the most asked of a host's stream at once (each piece resets its idle watch)
SQLITE_NAME = "chroma.sqlite3"


@dataclass(frozen=True)
class Remote:
    """A backup file on another host: its files (`hostfiles.RemoteFiles`) and listed size."""

    fs: Any
    size: int

    def failure(self, path: Path, exc: ProbeError) -> str:
        """Why the host's stream of `path` failed, naming the host (and not the path twice)."""
        name = self.fs.host.name
        why = str(exc).removeprefix(f"host {name}: ").removeprefix(f"read {path}: ")
        return f"stream from {name} failed: {why}"


class _Pieces:
    """A host's stream read in pieces of at most PIECE bytes: a reader asking for more
    (a gzip reader wants 8 MiB) would otherwise wait for all of it, silent to the idle
    watch, on a slow link."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.raw.read(PIECE), b""))
        return self.raw.read(min(n, PIECE))

    def readinto(self, buf) -> int:
        data = self.raw.read(min(len(buf), PIECE))
        buf[: len(data)] = data
        return len(data)


class ArchiveError(Exception):
    """The archive is not a good backup; the text says where and why, in one line."""


class ScratchError(Exception):
    """The scratch dir, not the backup, failed (missing, not a dir, read-only, full)."""


def scratch_problem(exc: OSError, doing: str) -> ScratchError:
    """What went wrong in the scratch dir (its caller names the dir), not the backup."""
    return ScratchError(f"{exc.strerror or exc} ({doing})")


@dataclass
class ChromaFacts:
    """What a Chroma SQLite store holds, read-only."""

    integrity: str = ""  # "ok" or SQLite's first complaint
    collections: int = 0
    embeddings: int = 0
    error: str = ""  # why the file could not be read as SQLite
    vector_segments: frozenset[str] | None = None  # VECTOR segment ids; None: not listed

    @property
    def ok(self) -> bool:
        return not self.error and self.integrity == "ok"

    @property
    def problem(self) -> str:
        """Why the store is not ok, in words; "" when it is."""
        if self.error:
            return f"the SQLite could not be read: {self.error}"
        return "" if self.integrity == "ok" else f"PRAGMA integrity_check says {self.integrity!r}"


@dataclass
class Verified:
    """The outcome of reading one backup file through."""

    path: str
    ok: bool = True
    error: str = ""
    compressed_bytes: int = 0
    content_bytes: int = 0  # bytes of member data (tar) or of the file (json)
    members: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (member, target) of symlinks
    sqlite_member: str = ""  # the member holding chroma.sqlite3, "" when none
    header_dirs: list[str] = field(default_factory=list)  # members' folders holding header.bin
    files: int = 0  # regular file members
    chroma: ChromaFacts | None = None
    templates: int | None = None  # records under "templates" (template data JSON)
    seconds: float = 0.0

    @property
    def segments(self) -> set[str]:
        """HNSW segment folders (holding header.bin) beside the archive's chroma.sqlite3."""
        if not self.sqlite_member:
            return set()
        store = posixpath.dirname(self.sqlite_member)
        return {posixpath.basename(d) for d in self.header_dirs if posixpath.dirname(d) == store}

    @property
    def chroma_readable(self) -> bool:
        """The archive read through and its chroma.sqlite3 passed its own checks."""
        return self.ok and self.chroma is not None and self.chroma.ok


def chroma_facts(db: Path) -> ChromaFacts:
    """Integrity and row counts of a Chroma SQLite file, opened read-only."""
    facts = ChromaFacts()
    try:
        con = _connect_ro(db)
        try:
            facts.integrity = str(con.execute("PRAGMA integrity_check").fetchone()[0])
            facts.collections = con.execute("SELECT count(*) FROM collections").fetchone()[0]
            facts.embeddings = con.execute("SELECT count(*) FROM embeddings").fetchone()[0]
            facts.vector_segments = _vector_segments(con)
        finally:
            con.close()
    except sqlite3.Error as exc:
        facts.error = str(exc)
    return facts


def _vector_segments(con: sqlite3.Connection) -> frozenset[str] | None:
    """Ids of the HNSW (VECTOR) segments the store lists; None when it has no such table."""
    try:
        rows = con.execute("SELECT id FROM segments WHERE scope = 'VECTOR'").fetchall()
    except sqlite3.Error:
        return None
    return frozenset(str(r[0]) for r in rows)


def _connect_ro(db: Path) -> sqlite3.Connection:
    """Read-only; a live WAL store whose -shm we may not create is opened immutable."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return con
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc):
            raise
        return sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True, timeout=5)


def template_records(data: bytes) -> int:
    """Records under "templates" in the service's template data JSON."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("templates"), list):
        raise ValueError('no "templates" list at the top level')
    return len(doc["templates"])


def verify_json(path: Path, max_bytes: int, remote: Remote | None = None) -> Verified:
    """A template data backup: readable, valid UTF-8 JSON with its templates."""
    return load_json(path, max_bytes, remote)[0]


def load_json(path: Path, max_bytes: int, remote: Remote | None = None) -> tuple[Verified, bytes]:
    """`verify_json`'s result and the bytes it read (here, or streamed from `remote`)."""
    result = Verified(str(path))
    start = time.perf_counter()
    data = b""
    try:
        size = path.stat().st_size if remote is None else remote.size
        if size > max_bytes:
            raise ArchiveError(f"{size} bytes, over the {max_bytes} byte limit")
        data = read_bytes(path) if remote is None else _streamed(path, max_bytes, remote)
        result.compressed_bytes = result.content_bytes = len(data)
        result.templates = template_records(data)
    except ArchiveError as exc:
        _fail(result, str(exc))
    except ProbeError as exc:  # a host's stream (only a remote file is streamed)
        _fail(result, remote.failure(path, exc) if remote else str(exc))
    except OSError as exc:
        _fail(result, f"cannot read: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        _fail(result, f"not UTF-8 at byte {exc.start}")
    except ValueError as exc:
        _fail(result, f"invalid JSON: {exc}")
    result.seconds = time.perf_counter() - start
    return result, data


def _streamed(path: Path, max_bytes: int, remote: Remote) -> bytes:
    """A host's file, whole, read from its stream (one grown past `max_bytes` is refused)."""
    pieces, total = [], 0
    with remote.fs.open(str(path), 0, remote.size) as raw:
        while total <= max_bytes:
            piece = raw.read(PIECE)
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
    if total > max_bytes:
        raise ArchiveError(f"grew past the {max_bytes} byte limit while it was read")
    return b"".join(pieces)


def verify(
    path: Path,
    max_bytes: int,
    scratch: Path | None = None,
    chroma: bool = False,
    remote: Remote | None = None,
) -> Verified:
    """Read a .tar.gz through without keeping it (a Chroma SQLite is checked in `scratch`);
    `chroma`: it must hold a Chroma store; `remote`: it is on another host, streamed."""
    return _walk(path, max_bytes, scratch, extract_to=None, chroma=chroma, remote=remote)


def extract(
    path: Path, dest: Path, max_bytes: int, chroma: bool = False, remote: Remote | None = None
) -> Verified:
    """Verify and write the members below `dest` (which must exist and be empty)."""
    return _walk(path, max_bytes, dest, extract_to=dest, chroma=chroma, remote=remote)


def _fail(result: Verified, message: str) -> None:
    """Mark the result failed; a second reason is added after the first."""
    result.ok = False
    result.error = f"{result.error}; {message}" if result.error else message


def _walk(
    path: Path,
    max_bytes: int,
    scratch: Path | None,
    extract_to: Path | None,
    chroma: bool,
    remote: Remote | None = None,
) -> Verified:
    result = Verified(str(path))
    start = time.perf_counter()
    try:
        result.compressed_bytes = path.stat().st_size if remote is None else remote.size
        if result.compressed_bytes == 0:
            raise ArchiveError("empty file (0 bytes)")
        with _scratch_tmp(scratch) as tmp:
            _read_members(path, result, max_bytes, tmp, extract_to, remote)
        _judge_contents(result, chroma)
    except ArchiveError as exc:
        _fail(result, str(exc))
    except ProbeError as exc:  # a host's stream (only a remote file is streamed)
        _fail(result, remote.failure(path, exc) if remote else str(exc))
    except PermissionError as exc:
        _fail(result, f"cannot read: {exc.strerror}")
    except OSError as exc:
        _fail(result, _describe_os_error(exc))
    except (EOFError, zlib.error) as exc:
        _fail(result, f"gzip stream broken: {exc}")
    except tarfile.TarError as exc:
        _fail(result, f"tar stream broken: {exc}")
    result.seconds = time.perf_counter() - start
    return result


@contextmanager
def _scratch_tmp(scratch: Path | None) -> Iterator[Path]:
    """A temporary dir below `scratch` (the system's temp dir when None), removed after."""
    try:
        tmp = Path(tempfile.mkdtemp(dir=scratch, prefix="opscheck-verify-"))
    except OSError as exc:
        raise scratch_problem(exc, "making a temporary dir in it") from None
    try:
        yield tmp
    finally:
        remove_tree(tmp)


def _describe_os_error(exc: OSError) -> str:
    text = str(exc)
    if "gzip" in text.lower() or "crc" in text.lower() or "magic" in text.lower():
        return f"gzip stream broken: {text}"
    return f"cannot read: {exc.strerror or text}"


class _Counting:
    """A reader that counts the bytes tarfile pulls through it."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data


def _gunzip(raw):
    return igzip_threaded.open(raw, "rb", threads=1, block_size=CHUNK)


@contextmanager
def _inflated(path: Path, remote: Remote | None) -> Iterator[IO[bytes]]:
    """The archive's inflated bytes: read here, or streamed from its host."""
    if remote is None:
        with open_decoded(path, _gunzip) as gz:
            yield gz
        return
    with remote.fs.open(str(path), 0, remote.size) as raw, _gunzip(_Pieces(raw)) as gz:
        yield gz


def _read_members(
    path: Path,
    result: Verified,
    max_bytes: int,
    tmp: Path,
    extract_to: Path | None,
    remote: Remote | None = None,
) -> None:
    total = 0
    with _inflated(path, remote) as gz:
        stream = _Counting(gz)
        with tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK) as tar:
            for member in tar:
                if total + member.size > max_bytes:
                    raise ArchiveError(
                        f"expands past the {max_bytes // 2**20} MiB limit at {member.name} "
                        "(decompression bomb?), refused"
                    )
                total += _take(tar, member, result, tmp, extract_to)
            end = tar.offset
        while stream.read(CHUNK):  # to the gzip stream's end, so its CRC and length are checked
            pass
    if not result.members:
        raise ArchiveError("no members: an empty or headerless archive")
    if stream.count - end < 1024:
        raise ArchiveError("tar end-of-archive marker missing: the archive was cut short")
    result.content_bytes = total


def _judge_contents(result: Verified, chroma: bool) -> None:
    """After a complete walk: a Chroma archive holds its SQLite; no link leaves the archive."""
    named = set()
    if chroma and not result.sqlite_member:
        _fail(result, _no_sqlite(result))
        named = {name for name, _ in result.links}
    for name, link in result.links:
        if name not in named and _leaves(name, link, symbolic=True):
            _fail(result, f"member {name!r} links outside the archive to {link!r} (refused)")


def _no_sqlite(result: Verified) -> str:
    """Why a Chroma archive fails without its SQLite, naming the links it holds instead."""
    if not result.links:
        return f"holds no {SQLITE_NAME}"
    links = ", ".join(f"{name} -> {link}" for name, link in result.links)
    noun = "symlinks" if len(result.links) > 1 else "a symlink"
    only = "only " if result.files == 0 else ""
    return f"holds no {SQLITE_NAME} ({only}{noun} {links})"


def _take(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    result: Verified,
    tmp: Path,
    extract_to: Path | None,
) -> int:
    """Check one member, read its data through (writing it when extracting); its size."""
    _refuse_hostile(member)
    result.members.append(member.name)
    target = _target(extract_to, member) if extract_to else None
    if member.isdir():
        if target:
            _in_scratch(member.name, target.mkdir, parents=True, exist_ok=True)
        return 0
    if member.issym() or member.islnk():
        if member.issym():
            result.links.append((member.name, member.linkname))
        if target and not _leaves(member.name, member.linkname, member.issym()):
            _in_scratch(member.name, _link, extract_to, target, member)
        return 0
    result.files += 1
    base = posixpath.basename(member.name)
    if base == "header.bin":
        result.header_dirs.append(posixpath.dirname(member.name))
    sqlite_copy = None
    if base == SQLITE_NAME:
        sqlite_copy = target or tmp / SQLITE_NAME
        result.sqlite_member = member.name
    _copy_member(tar, member, target or sqlite_copy)
    if sqlite_copy is not None:
        _check_sqlite(result, member.name, sqlite_copy)
    return member.size


def _check_sqlite(result: Verified, name: str, copy: Path) -> None:
    """Read the archive's SQLite copy; a bad one fails the archive, the walk goes on."""
    result.chroma = chroma_facts(copy)
    if not result.chroma.ok:
        _fail(result, f"{name}: {result.chroma.problem}")


def _refuse_hostile(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {name!r} has an absolute path (refused)")
    if ".." in name.split("/"):
        raise ArchiveError(f"member {name!r} climbs out with '..' (refused)")
    if member.isdev():
        raise ArchiveError(f"member {name!r} is a device or fifo (refused)")
    if member.islnk() and _leaves(name, member.linkname, symbolic=False):
        link = member.linkname
        raise ArchiveError(f"member {name!r} links outside the archive to {link!r} (refused)")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise ArchiveError(f"member {name!r} has an unsupported type (refused)")


def _leaves(name: str, link: str, symbolic: bool) -> bool:
    """A link whose target lies outside the archive's root (never written)."""
    base = posixpath.dirname(name) if symbolic else ""
    resolved = posixpath.normpath(posixpath.join(base, link))
    return link.startswith("/") or resolved == ".." or resolved.startswith("../")


def _target(root: Path, member: tarfile.TarInfo) -> Path:
    target = (root / member.name).resolve()
    if root.resolve() not in (target, *target.parents):
        raise ArchiveError(f"member {member.name!r} would land outside the scratch dir (refused)")
    return target


def _link(root: Path, target: Path, member: tarfile.TarInfo) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if member.issym():
        os.symlink(member.linkname, target)
    else:
        source = _target(root, tarfile.TarInfo(member.linkname))
        os.link(source, target)


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path | None) -> None:
    """Read the member's data to its last byte; write it to `target` (in the scratch dir)
    when given. A write that fails is the scratch dir's fault (ScratchError), said so."""
    src = tar.extractfile(member)
    if src is None:
        return
    remaining = member.size
    out = _open_out(target, member.name) if target is not None else None
    try:
        while remaining > 0:
            chunk = src.read(min(CHUNK, remaining))
            if not chunk:
                raise ArchiveError(f"member {member.name!r} is cut short")
            remaining -= len(chunk)
            if out is not None:
                _write(out, chunk, member.name)
    finally:
        if out is not None:
            _close(out, target, member.name)


def _in_scratch(name: str, write, *args, **kwargs) -> None:
    """Run `write` (a write in the scratch dir); its failure is a ScratchError."""
    try:
        write(*args, **kwargs)
    except OSError as exc:
        raise scratch_problem(exc, f"writing {name}") from None


def _open_out(target: Path, name: str):
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return open(target, "wb")
    except OSError as exc:
        raise scratch_problem(exc, f"writing {name}") from None


def _write(out, chunk: bytes, name: str) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        raise scratch_problem(exc, f"writing {name}") from None


def _close(out, target: Path, name: str) -> None:
    try:
        out.close()
        os.chmod(target, 0o644)
    except OSError as exc:
        raise scratch_problem(exc, f"writing {name}") from None
