"""Old files in the service's temp dirs, found from metadata alone.

The walk lists directories and `lstat`s entries: it never opens a file, so no file's
atime moves, and it never follows a link. Whose files count: on a real host `/tmp`
holds other programs' files (systemd-private-*, tmux sockets, pip builds, another
service's caches) that this service's housekeeping neither makes nor may delete; judging
them would make the check red on healthy days and blame the wrong owner. So only files
owned by `owner` (the service's user) count, and directories of other owners are not
entered (often they cannot be: systemd-private-* is 700 root); `owner = "*"` counts
every file. `patterns` (globs on the path below the temp dir) narrow further, e.g. to
the service's own `kakao-template-*`. The walk stops after `max_files` entries and says so.
"""

from __future__ import annotations

import fnmatch
import os
import pwd
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class OldFile:
    path: str
    age_days: float


@dataclass
class TempScan:
    dirs: list[str]
    files_seen: int = 0  # entries examined (files, links, sockets ...)
    files_counted: int = 0  # of them, the service's (owner and pattern match)
    other_owner_dirs: int = 0  # directories of other owners, not entered
    capped: bool = False
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    old: list[OldFile] = field(default_factory=list)  # older than max_age_days, oldest first
    oldest_days: float = 0.0


def _uid(owner: str) -> int | None:
    """The uid to count, None for every owner; raises ValueError for an unknown user."""
    if owner == "*":
        return None
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise ValueError(f"unknown user {owner!r}") from None


def scan(
    dirs: list[str],
    max_age_days: float,
    owner: str = "*",
    patterns: list[str] | None = None,
    max_files: int = 100000,
    now: float | None = None,
) -> TempScan:
    """Files older than `max_age_days` (mtime) below each of `dirs`."""
    result = TempScan(dirs=list(dirs))
    now = time.time() if now is None else now
    try:
        uid = _uid(owner)
    except ValueError as exc:
        result.unreadable.append((owner, str(exc)))
        return result
    globs = list(patterns or ["*"])
    for top in dirs:
        if not _walk(Path(top), uid, globs, max_age_days, max_files, now, result):
            break
    result.old.sort(key=lambda f: -f.age_days)
    return result


def _walk(top, uid, globs, max_age_days, max_files, now, result: TempScan) -> bool:
    """Walk one temp dir; False when the file cap was reached."""
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as exc:
            result.unreadable.append((str(d), exc.strerror or str(exc)))
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):  # gone meanwhile: not old
                    result.unreadable.append((e.path, exc.strerror or str(exc)))
                continue
            if stat.S_ISDIR(st.st_mode):
                if uid is None or st.st_uid == uid:
                    stack.append(Path(e.path))
                else:
                    result.other_owner_dirs += 1
                continue
            if result.files_seen >= max_files:
                result.capped = True
                return False
            result.files_seen += 1
            _judge(top, Path(e.path), st, uid, globs, max_age_days, now, result)
    return True


def _judge(top, path, st, uid, globs, max_age_days, now, result: TempScan) -> None:
    if uid is not None and st.st_uid != uid:
        return
    rel = path.relative_to(top).as_posix()
    if not any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(path.name, g) for g in globs):
        return
    result.files_counted += 1
    age = max(0.0, (now - st.st_mtime) / 86400)
    result.oldest_days = max(result.oldest_days, age)
    if age > max_age_days:
        result.old.append(OldFile(str(path), age))
