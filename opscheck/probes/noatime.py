"""Reading the target's files without changing their access time.

Under `relatime` (the default mount option) reading a file sets its atime when the atime
is not newer than its mtime, so a check that reads a log or a backup would write to the
target's inodes. `O_NOATIME` avoids that; Linux allows it to the file's owner and root,
and refuses it with EPERM to others, who then read with a plain open (their reads may
touch atime: nothing else can be done without the right).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

NOATIME = getattr(os, "O_NOATIME", 0)


def _opener(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | NOATIME)
    except PermissionError as exc:
        if exc.errno != errno.EPERM or not NOATIME:
            raise
        return os.open(path, flags)


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """`open(path, "rb")` (same errors), with O_NOATIME where permitted."""
    return open(path, "rb", opener=_opener)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """`Path(path).read_bytes()`, with O_NOATIME where permitted."""
    with open_binary(path) as f:
        return f.read()


def read_text(path: str | os.PathLike[str], errors: str = "strict") -> str:
    """`Path(path).read_text()` (UTF-8), with O_NOATIME where permitted."""
    return read_bytes(path).decode("utf-8", errors)


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """`shutil.copyfile(src, dst)`, reading `src` with O_NOATIME where permitted."""
    with open_binary(src) as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


class Stacked:
    """A decompressing stream over a file opened here: closing it closes both."""

    def __init__(self, stream: Any, raw: IO[bytes]) -> None:
        self._stream, self._raw = stream, raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self):
        return iter(self._stream)

    def __enter__(self) -> Stacked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._raw.close()


def open_decoded(path: str | os.PathLike[str] | Path, decoder: Callable[[IO[bytes]], Any]):
    """`decoder(file)` over `path` opened with O_NOATIME; closing it closes the file."""
    raw = open_binary(path)
    try:
        return Stacked(decoder(raw), raw)
    except BaseException:
        raw.close()
        raise
