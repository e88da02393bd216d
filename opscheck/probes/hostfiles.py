"""A host's files, read where they are: listings, byte ranges and streams.

`LocalFiles` reads this machine (os.scandir, O_NOATIME). `RemoteFiles` reads a
`remote.RemoteHost` with coreutils and findutils through its connection: a listing is one
`find -printf`, byte ranges are `dd` (with `iflag=noatime` where the file's owner or root
may use it, so no atime moves there either), many small ranges go in one command
(`prefetch`, base64-fenced), and a file's content is streamed (`open`), never copied to
disk here nor held whole. Nothing is written on the host.

Errors come back as the OSError the local call would raise (FileNotFoundError,
PermissionError, NotADirectoryError, else OSError with the host's words), so a probe
handles both hosts with one `except`; a connection failure is a ProbeError naming the host.
"""

from __future__ import annotations

import base64
import errno
import os
import re
import shlex
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from opscheck.probes.noatime import open_binary

_C = "export LC_ALL=C; "


@dataclass(frozen=True)
class Entry:
    """A directory entry, symlinks followed (kind "l": a link whose target is missing)."""

    name: str
    kind: str  # as find's %y: f (regular), d, l, p (FIFO), s, c, b
    size: int
    mtime: float
    dev: int = 0
    ino: int = 0

    @property
    def is_file(self) -> bool:
        return self.kind == "f"


_KIND = {
    stat.S_IFREG: "f",
    stat.S_IFDIR: "d",
    stat.S_IFLNK: "l",
    stat.S_IFIFO: "p",
    stat.S_IFSOCK: "s",
    stat.S_IFCHR: "c",
    stat.S_IFBLK: "b",
}


class LocalFiles:
    """This machine's files."""

    remote = False
    where = ""

    def entries(self, directory: str, prefix: str = "") -> list[Entry]:
        """The entries of `directory` whose names start with `prefix` (OSError as
        os.scandir raises it; entries of other names are not looked at)."""
        out = []
        with os.scandir(directory) as it:
            for e in it:
                if not e.name.startswith(prefix):
                    continue
                try:
                    st = e.stat()
                except FileNotFoundError:
                    try:
                        st = e.stat(follow_symlinks=False)  # a dangling link
                    except FileNotFoundError:
                        continue  # gone meanwhile
                kind = _KIND.get(stat.S_IFMT(st.st_mode), "?")
                out.append(Entry(e.name, kind, st.st_size, st.st_mtime, st.st_dev, st.st_ino))
        return out

    def read(self, path: str, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of `path` (fewer at its end)."""
        with open_binary(path) as f:
            f.seek(start)
            return f.read(length)

    def prefetch(self, ranges: list[tuple[str, int, int]]) -> None:
        """(Local reads cost nothing to ask for one by one.)"""

    @contextmanager
    def open(
        self, path: str, start: int = 0, size_hint: int = 0, length: int | None = None
    ) -> Iterator[IO[bytes]]:
        with open_binary(path) as f:
            if start:
                f.seek(start)
            yield f


# dd with O_NOATIME where this user may (owner or root), else without; GNU coreutils.
_DD = (
    'f={p}; n=; dd if="$f" of=/dev/null iflag=noatime count=0 status=none 2>/dev/null'
    ' && n=noatime,; dd if="$f" iflag="${{n}}skip_bytes,count_bytes" skip={start} {count}'
    " bs=65536 status=none"
)
_FIND = "find -L {p} -mindepth 1 -maxdepth 1 -printf '%y %s %T@ %D %i %f\\0'"


def dd_command(path: str, start: int = 0, length: int | None = None) -> str:
    count = f"count={length}" if length is not None else ""
    return _DD.format(p=shlex.quote(path), start=start, count=count)


def os_error(path: str, message: str) -> OSError:
    """The OSError a local call would raise for a tool's message about `path`."""
    for text, code, kind in (
        ("No such file or directory", errno.ENOENT, FileNotFoundError),
        ("Permission denied", errno.EACCES, PermissionError),
        ("Not a directory", errno.ENOTDIR, NotADirectoryError),
        ("Is a directory", errno.EISDIR, IsADirectoryError),
    ):
        if text in message:
            return kind(code, text, path)
    return OSError(errno.EIO, message.strip() or "read failed", path)


def _listing_problem(directory: str, prefix: str, err: str) -> OSError | None:
    """The error of a `find` listing that exited non-zero: the directory's own, or one
    about an entry that matters (named `prefix`...); None if every complaint was about
    entries of other names."""
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    base = directory.rstrip("/") + "/"
    for line in lines:
        m = re.match(r"find: ['‘](.*)['’]: (.*)$", line)
        if m is None:
            return os_error(directory, line)
        path, why = m.groups()
        if not path.startswith(base):
            return os_error(directory, why)
        if path[len(base) :].startswith(prefix):
            return os_error(path, why)
    return None if lines else OSError(errno.EIO, "find failed without a word", directory)


def parse_entries(out: str) -> list[Entry]:
    """find's `%y %s %T@ %D %i %f` records, NUL-separated."""
    rows = []
    for record in filter(None, out.split("\0")):
        kind, size, mtime, dev, ino, name = record.split(" ", 5)
        rows.append(Entry(name, kind, int(size), float(mtime), int(dev), int(ino)))
    return rows


class RemoteFiles:
    """A remote host's files, through its connection (`remote.RemoteHost`)."""

    remote = True

    def __init__(self, host) -> None:
        self.host = host
        self.where = f"{host.name}: "
        self._ranges: dict[str, list[tuple[int, int, bytes | OSError]]] = {}

    def entries(self, directory: str, prefix: str = "") -> list[Entry]:
        """As LocalFiles.entries: one `find`; an entry of another name that find could
        not stat (a looping link, one removed meanwhile) is no error of this listing."""
        command = _FIND.format(p=shlex.quote(directory))
        rc, out, err = self.host.run_rc(f"list {directory}", _C + command)
        if rc != 0:
            problem = _listing_problem(directory, prefix, err)
            if problem:
                raise problem
        try:
            rows = parse_entries(out)
        except ValueError as exc:
            raise OSError(errno.EIO, f"its listing does not parse ({exc})", directory) from None
        return [e for e in rows if e.name.startswith(prefix)]

    def prefetch(self, ranges: list[tuple[str, int, int]]) -> None:
        """Read every (path, start, length) in one command; `read` then serves them."""
        if not ranges:
            return
        token = f"@@opscheck-{os.urandom(6).hex()}"
        parts = [_C.strip()]
        for n, (path, start, length) in enumerate(ranges):
            parts.append(
                f"printf '%s %s\\n' {token} {n}; "
                f'{{ e=$( {{ {{ {dd_command(path, start, length)}; echo "{token}-rc $?" >&2; }}'
                f" | base64 -w0 >&3; }} 2>&1 | tr '\\n' ' ' ); }} 3>&1;"
                f" printf '\\n%s err %s\\n' {token} \"$e\""
            )
        size = sum(length for _, _, length in ranges)
        budget = self.host.stream_budget(size * 4 // 3)
        _, out, _ = self.host.run_rc("read heads and tails of files", "\n".join(parts), budget)
        got = fenced(out, token, len(ranges))
        for n, (path, start, length) in enumerate(ranges):
            if n in got:
                data, error = got[n]
                value: bytes | OSError = os_error(path, error) if error else data
                self._ranges.setdefault(path, []).append((start, length, value))

    def read(self, path: str, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of `path` (fewer at its end), from a prefetched
        range when one holds them, else by a command of their own."""
        for at, asked, value in self._ranges.get(path, []):
            if isinstance(value, OSError):
                raise value
            to_end = len(value) < asked  # that range reached the file's end
            if at <= start and (start + length <= at + len(value) or to_end):
                return value[start - at : start - at + length]
        self.prefetch([(path, start, length)])
        for at, asked, value in self._ranges.get(path, []):
            if (at, asked) == (start, length):
                if isinstance(value, OSError):
                    raise value
                return value
        raise OSError(errno.EIO, "its bytes did not come back", path)

    @contextmanager
    def open(
        self, path: str, start: int = 0, size_hint: int = 0, length: int | None = None
    ) -> Iterator[IO[bytes]]:
        """`path`'s content from `start` (`length` bytes, or to its end), streamed; the
        block's end raises a ProbeError naming the host if the stream failed, stalled or
        was cut. `size_hint` (the file's size) sets the deadline (`stream_budget`)."""
        size = max(0, size_hint - start) if length is None else length
        command = dd_command(path, start, length)
        with self.host.stream(f"read {path}", command, self.host.stream_budget(size)) as f:
            yield f


def fenced(out: str, token: str, count: int) -> dict[int, tuple[bytes, str]]:
    """Section -> (its bytes, why dd failed or "") of a prefetch's output: dd's own words
    with a non-zero exit, "dd exited N" without them, "no exit status" if dd never ended."""
    found: dict[int, tuple[bytes, str]] = {}
    current, body = -1, []
    for line in out.splitlines():
        if not line.startswith(token + " "):
            body.append(line)
            continue
        word = line.split(" ", 2)[1:]
        if word[0] == "err" and current >= 0:
            found[current], current = _section(body, word[1] if len(word) > 1 else "", token), -1
        elif word[0].isdigit() and int(word[0]) < count:
            current, body = int(word[0]), []
    return found


def _section(body: list[str], err: str, token: str) -> tuple[bytes, str]:
    m = re.search(rf"{re.escape(token)}-rc (\d+)", err)
    words = re.sub(rf"{re.escape(token)}-rc \d+", "", err).strip()
    if m is None:
        return b"", words or "no exit status (dd did not finish)"
    if m.group(1) != "0":
        return b"", words or f"dd exited {m.group(1)}"
    try:
        return base64.b64decode("".join(body), validate=True), ""
    except ValueError:
        return b"", "its bytes came back garbled"


def files_of(host) -> LocalFiles | RemoteFiles:
    """The files of `host` (an `ops_host`): this machine's, or a remote host's."""
    from opscheck.probes.host import LocalHost

    return LocalFiles() if host is None or isinstance(host, LocalHost) else RemoteFiles(host)
