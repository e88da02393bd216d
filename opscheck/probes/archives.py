"""Read backup archives through to the end, and extract them safely.

`verify` streams a `.tar.gz` once: the gzip layer (CRC and length checked by ISA-L's
inflate in a background thread, so inflating and tar walking use two cores), every
tar member's data to its last byte, the end-of-archive marker, and for a Chroma
store the SQLite file itself (`PRAGMA integrity_check`, collection and embedding
rows). `extract` does the same while writing the members below a scratch root.
Hostile members (absolute paths, `..`, links leaving the root, devices, more bytes
than the limit) are refused before anything of theirs is written.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from isal import igzip_threaded

CHUNK = 1 << 20
SQLITE_NAME = "chroma.sqlite3"


class ArchiveError(Exception):
    """The archive is not a good backup; the text says where and why, in one line."""


@dataclass
class ChromaFacts:
    """What a Chroma SQLite store holds, read-only."""

    integrity: str = ""  # "ok" or SQLite's first complaint
    collections: int = 0
    embeddings: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.integrity == "ok"


@dataclass
class Verified:
    """The outcome of reading one backup file through."""

    path: str
    ok: bool = True
    error: str = ""
    compressed_bytes: int = 0
    content_bytes: int = 0  # bytes of member data (tar) or of the file (json)
    members: list[str] = field(default_factory=list)
    chroma: ChromaFacts | None = None
    templates: int | None = None  # records under "templates" (template data JSON)
    seconds: float = 0.0


def chroma_facts(db: Path) -> ChromaFacts:
    """Integrity and row counts of a Chroma SQLite file, opened read-only."""
    facts = ChromaFacts()
    try:
        con = _connect_ro(db)
        try:
            facts.integrity = str(con.execute("PRAGMA integrity_check").fetchone()[0])
            facts.collections = con.execute("SELECT count(*) FROM collections").fetchone()[0]
            facts.embeddings = con.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as exc:
        facts.error = f"SQLite: {exc}"
    return facts


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


def verify_json(path: Path, max_bytes: int) -> Verified:
    """A template data backup: readable, valid UTF-8 JSON with its templates."""
    result = Verified(str(path))
    start = time.perf_counter()
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ArchiveError(f"{size} bytes, over the {max_bytes} byte limit")
        data = path.read_bytes()
        result.compressed_bytes = result.content_bytes = len(data)
        result.templates = template_records(data)
    except ArchiveError as exc:
        _fail(result, str(exc))
    except OSError as exc:
        _fail(result, f"cannot read: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        _fail(result, f"not UTF-8 at byte {exc.start}")
    except ValueError as exc:
        _fail(result, f"invalid JSON: {exc}")
    result.seconds = time.perf_counter() - start
    return result


def verify(path: Path, max_bytes: int, scratch: Path | None = None) -> Verified:
    """Read a .tar.gz through without keeping it (a Chroma SQLite is checked in `scratch`)."""
    return _walk(path, max_bytes, scratch, extract_to=None)


def extract(path: Path, dest: Path, max_bytes: int) -> Verified:
    """Verify and write the members below `dest` (which must exist and be empty)."""
    return _walk(path, max_bytes, dest, extract_to=dest)


def _fail(result: Verified, message: str) -> None:
    result.ok = False
    result.error = result.error or message


def _walk(path: Path, max_bytes: int, scratch: Path | None, extract_to: Path | None) -> Verified:
    result = Verified(str(path))
    start = time.perf_counter()
    try:
        result.compressed_bytes = path.stat().st_size
        if result.compressed_bytes == 0:
            raise ArchiveError("empty file (0 bytes)")
        with tempfile.TemporaryDirectory(dir=scratch, prefix="opscheck-verify-") as tmp:
            _read_members(path, result, max_bytes, Path(tmp), extract_to)
    except ArchiveError as exc:
        _fail(result, str(exc))
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


def _read_members(
    path: Path, result: Verified, max_bytes: int, tmp: Path, extract_to: Path | None
) -> None:
    total = 0
    with igzip_threaded.open(path, "rb", threads=1, block_size=CHUNK) as gz:
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
            target.mkdir(parents=True, exist_ok=True)
        return 0
    if member.issym() or member.islnk():
        if target:
            _link(extract_to, target, member)
        return 0
    sqlite_copy = None
    if posixpath.basename(member.name) == SQLITE_NAME:
        sqlite_copy = target or tmp / SQLITE_NAME
    _copy_member(tar, member, target or sqlite_copy)
    if sqlite_copy is not None:
        result.chroma = chroma_facts(sqlite_copy)
        if not result.chroma.ok:
            raise ArchiveError(f"{member.name}: {result.chroma.error or result.chroma.integrity}")
    return member.size


def _refuse_hostile(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {name!r} has an absolute path (refused)")
    if ".." in name.split("/"):
        raise ArchiveError(f"member {name!r} climbs out with '..' (refused)")
    if member.isdev():
        raise ArchiveError(f"member {name!r} is a device or fifo (refused)")
    if member.issym() or member.islnk():
        link = member.linkname
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, link))
        if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise ArchiveError(f"member {name!r} links outside the archive to {link!r} (refused)")
    elif not (member.isfile() or member.isdir()):
        raise ArchiveError(f"member {name!r} has an unsupported type (refused)")


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
    """Read the member's data to its last byte; write it to `target` when given."""
    src = tar.extractfile(member)
    if src is None:
        return
    remaining = member.size
    out = None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "wb")  # noqa: SIM115 - closed below
    try:
        while remaining > 0:
            chunk = src.read(min(CHUNK, remaining))
            if not chunk:
                raise ArchiveError(f"member {member.name!r} is cut short")
            remaining -= len(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
            os.chmod(target, 0o644)


def remove_tree(path: Path) -> None:
    """Remove a scratch tree whatever modes its members came with."""

    def unlock(func, p, _exc_info):
        os.chmod(p, 0o700)
        func(p)

    shutil.rmtree(path, onerror=unlock)
