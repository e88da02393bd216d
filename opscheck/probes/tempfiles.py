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

On a remote host (`scan_host`) the same walk is one `find` per temp dir, run there: it
prints type, uid, owner, mtime and path of each entry (NUL-separated, links never
followed, files never opened), prunes directories of other owners (the owner's uid is the
host's own, `id -u NAME` there) and is cut after `max_files` entries; its "Permission
denied" lines are the unreadable dirs. The same counting makes the same `TempScan`.
"""

from __future__ import annotations

import fnmatch
import os
import pwd
import re
import shlex
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from opscheck.probes import ProbeError
from opscheck.probes.host import LocalHost
from opscheck.probes.remote import _C as LC_C


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
    _count(top, path, st.st_uid, st.st_mtime, uid, globs, max_age_days, now, result)


def _count(top, path, file_uid, mtime, uid, globs, max_age_days, now, result: TempScan) -> None:
    """Count one file (not a directory) when it is the owner's and a pattern names it."""
    if uid is not None and file_uid != uid:
        return
    rel = path.relative_to(top).as_posix()
    if not any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(path.name, g) for g in globs):
        return
    result.files_counted += 1
    age = max(0.0, (now - mtime) / 86400)
    result.oldest_days = max(result.oldest_days, age)
    if age > max_age_days:
        result.old.append(OldFile(str(path), age))


# ---- on a remote host: one find per temp dir, run there ----------------------------------

WALK_S = 60.0  # a find's own time, beyond the host's timeout_s
OTHER_DIRS_MAX = 10000  # other owners' dirs a find may list beyond the file cap
_END = "@@opscheck-find-end"
# type, uid, owner, mtime, path below the temp dir; NUL-terminated (any name survives)
_FORMAT = "'%y %U %u %T@ %P\\0'"
_ERROR = re.compile(r"^find: '(.*)': ([^:]+)$")


class _UnknownUser(Exception):
    """The owner has no account on the host."""


def scan_host(
    host,
    dirs: list[str],
    max_age_days: float,
    owner: str = "*",
    patterns: list[str] | None = None,
    max_files: int = 100000,
) -> TempScan:
    """`scan` on `host`: this machine by the os.scandir walk, another host by `find` there
    (its clock for the ages, its account for the owner's uid)."""
    if isinstance(host, LocalHost):
        return scan(dirs, max_age_days, owner, patterns, max_files)
    result = TempScan(dirs=list(dirs))
    try:
        now, uid = _clock_and_uid(host, owner)
    except _UnknownUser:
        result.unreadable.append((owner, f"unknown user {owner!r}"))
        return result
    globs = list(patterns or ["*"])
    for top in map(str, map(Path, dirs)):
        records = max(0, max_files - result.files_seen) + 1 + OTHER_DIRS_MAX
        out, err = _find(host, top, uid, records)
        try:
            done = _tally(top, out, err, records, uid, globs, max_age_days, max_files, now, result)
        except ValueError as exc:
            raise ProbeError(f"host {host.name}: find in {top}: cannot parse ({exc})") from None
        if not done:
            break
    result.old.sort(key=lambda f: -f.age_days)
    return result


def _clock_and_uid(host, owner: str) -> tuple[float, int | None]:
    """The host's time (s since the epoch) and the owner's uid there (None: every owner)."""
    command = "date +%s.%N" + ("" if owner == "*" else f" && id -u -- {shlex.quote(owner)}")
    rc, out, err = host.run_rc(f"id -u {owner}", LC_C + command)
    words = out.split()
    if rc != 0:
        if "no such user" in err or "unknown user" in err:
            raise _UnknownUser(owner)
        why = _last_line(err) or f"exit code {rc}"
        raise ProbeError(f"host {host.name}: id -u {owner}: {why}")
    try:
        now = _seconds(words[0])
        return now, None if owner == "*" else int(words[1])
    except (ValueError, IndexError):
        raise ProbeError(f"host {host.name}: id -u {owner}: cannot parse {out[:60]!r}") from None


def _seconds(text: str) -> float:
    """`date +%s.%N`: seconds with nanoseconds; a date without %N gives whole seconds."""
    whole, _, fraction = text.partition(".")
    return float(f"{whole}.{fraction}") if fraction.isdigit() else float(whole)


def find_command(top: str, uid: int | None, records: int) -> str:
    """One find over `top`: every non-directory, and every directory of another owner
    (listed, then pruned: not entered), at most `records` of them; then an end record."""
    expr = f"! -type d -printf {_FORMAT}"
    if uid is not None:
        expr += f" -o ! -uid {uid} -printf {_FORMAT} -prune"
    find = f"find -H {shlex.quote(top)} -mindepth 1 {expr}"
    return f"{{ {find}; printf '%s %s\\0' {_END} \"$?\"; }} | head -z -n {records}"


def _find(host, top: str, uid: int | None, records: int) -> tuple[str, str]:
    budget = host.opts.timeout_s + WALK_S
    rc, out, err = host.run_rc(f"find in {top}", LC_C + find_command(top, uid, records), budget)
    if rc != 0:
        why = _last_line(err) or f"exit code {rc}"
        raise ProbeError(f"host {host.name}: find in {top}: {why}")
    return out, err


def _tally(top, out, err, records, uid, globs, max_age_days, max_files, now, result) -> bool:
    """Count a find's records as the local walk counts entries; False when capped."""
    _unreadable(top, err, result)
    *found, rest = out.split("\0")
    if rest:
        raise ValueError(f"a record without its end: {rest[:60]!r}")
    ended = None
    for record in found:
        if ended is not None:
            raise ValueError(f"a record after the end: {record[:60]!r}")
        if record.startswith(_END + " "):
            ended = int(record.split()[1])
            continue
        kind, file_uid, _, mtime, rel = record.split(" ", 4)
        if kind == "d":
            result.other_owner_dirs += 1
            continue
        if result.files_seen >= max_files:
            result.capped = True
            return False
        result.files_seen += 1
        path = Path(top) / rel
        _count(Path(top), path, int(file_uid), float(mtime), uid, globs, max_age_days, now, result)
    if ended is None:
        if len(found) < records:
            raise ValueError(f"the output ended after {len(found)} records, before find's end")
        result.capped = True  # cut by head: more entries than the cap let through
        return False
    if ended != 0 and not err.strip():
        result.unreadable.append((top, f"find exited {ended}"))
    return True


def _unreadable(top: str, err: str, result: TempScan) -> None:
    """find's complaints as the local walk's: a vanished entry is not old; any line that is
    not find's "'path': reason" is kept whole (never a silent pass)."""
    for line in filter(None, (ln.strip() for ln in err.splitlines())):
        m = _ERROR.match(line)
        if m is None:
            result.unreadable.append((top, line))
            continue
        path, why = re.sub(r"\\(.)", r"\1", m.group(1)), m.group(2)
        if why == "No such file or directory" and path != top:
            continue  # gone meanwhile
        result.unreadable.append((path, why))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
