"""No writes: a run of every cadence leaves the target's files as they were.

Digests of the sandbox's target trees (app dir, backups, nginx logs, etc/, secure/, tmp/:
for every entry its type, mode, owner, size, mtime and, for files, content hash and
atime) are taken before and after `pytest -m <cadence>` and must be equal. The sandbox
has no traffic generator: its logs are written once when it is laid out, and the only
writer while it runs is the replica answering the suite's own requests. What the
comparison leaves out, each for a stated reason:

- the active app log (`app/logs/app.log`): the replica appends the lines the real
  service writes for each request it serves (the suite's /health, smoke and load
  requests). Its content before the run must be an unchanged prefix, its mode, owner
  and atime unchanged, and what was added complete lines stamped as the service stamps
  them; its size and mtime change;
- the atime of `app/chroma_db/chroma.sqlite3`: the replica opens the store on every
  /health, as the real service does, and the monthly drill counts the live store's rows
  through SQLite, which opens the file itself (no O_NOATIME). Its content, mode and
  mtime are compared;
- the atime of directories: listing a directory reads it (the digest itself lists them).

Every other file keeps its atime: the logs, backups and logrotate file the suite reads
are opened with O_NOATIME (`opscheck/probes/noatime.py`), and the files it only
stat's (.env, data dirs, temp files) are never opened.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import pytest

from tests.test_fault_matrix import LOAD, bound_s, run_cadence

TREES = ("app", "backups", "nginx", "etc", "secure", "tmp")
APP_LOG = "app/logs/app.log"
STORE = "app/chroma_db/chroma.sqlite3"
STAMPED_LINE = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - [\w.]+ - [A-Z]+ - ")
# a check per cadence that must pass, so the files were really read (not a vacuous run)
READERS = {"daily": "error_rate", "weekly": "backup_integrity", "monthly": "restore_drill"}


def digest(root: Path) -> dict[str, dict]:
    """Every entry below the target trees of `root`, by relative path."""
    out = {}
    for tree in TREES:
        for dirpath, dirnames, filenames in os.walk(root / tree):
            for name in [*dirnames, *filenames, *([] if dirpath != str(root / tree) else [""])]:
                path = Path(dirpath) / name if name else Path(dirpath)
                out[str(path.relative_to(root))] = _entry(path)
    return out


def _read(path: Path) -> bytes:
    """The content, read with O_NOATIME (the test runs as root or as the files' owner);
    its own open, not the suite's helper it checks."""
    fd = os.open(path, os.O_RDONLY | os.O_NOATIME)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _entry(path: Path) -> dict:
    st = os.lstat(path)
    entry = {
        "mode": stat.filemode(st.st_mode),
        "owner": (st.st_uid, st.st_gid),
        "mtime_ns": st.st_mtime_ns,
    }
    if stat.S_ISREG(st.st_mode):
        entry["size"] = st.st_size
        entry["atime_ns"] = st.st_atime_ns
        entry["sha256"] = hashlib.sha256(_read(path)).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        entry["link"] = os.readlink(path)
    return entry


def changes(before: dict[str, dict], after: dict[str, dict], root: Path) -> list[str]:
    """What differs, one line each, the stated exclusions applied."""
    out = [f"{p}: created" for p in sorted(set(after) - set(before))]
    out += [f"{p}: removed" for p in sorted(set(before) - set(after))]
    for path in sorted(set(before) & set(after)):
        a, b = dict(before[path]), dict(after[path])
        if path == APP_LOG:
            out += _app_log_changes(root / path, a, b)
            continue
        if path == STORE or "size" not in a:
            a.pop("atime_ns", None)
            b.pop("atime_ns", None)
        out += [f"{path}: {k} {a[k]!r} -> {b.get(k)!r}" for k in a if a[k] != b.get(k)]
    return out


def _app_log_changes(path: Path, a: dict, b: dict) -> list[str]:
    """The replica's appends only: the old content a prefix, the new one stamped lines."""
    out = [
        f"{APP_LOG}: {k} {a[k]!r} -> {b[k]!r}"
        for k in ("mode", "owner", "atime_ns")
        if a[k] != b[k]
    ]
    data = _read(path)
    if hashlib.sha256(data[: a["size"]]).hexdigest() != a["sha256"]:
        out.append(f"{APP_LOG}: its content before the run was changed")
    added = data[a["size"] :]
    if added and not added.endswith(b"\n"):
        out.append(f"{APP_LOG}: an incomplete line was appended")
    strays = [ln for ln in added.splitlines() if not STAMPED_LINE.match(ln)]
    if strays:
        out.append(
            f"{APP_LOG}: {len(strays)} appended lines the replica does not write: {strays[:2]}"
        )
    return out


def test_digest_sees_a_read_and_a_chmod(sandbox_factory):
    """The red half: a plain read of a rotated log (atime) and a chmod are seen."""
    sb = sandbox_factory("down")
    log = sb.root / "app" / "logs" / "app.log.1"
    os.utime(log, ns=(log.stat().st_mtime_ns - 10**9, log.stat().st_mtime_ns))
    before = digest(sb.root)
    log.read_bytes()
    (sb.root / "app" / ".env").chmod(0o640)
    found = changes(before, digest(sb.root), sb.root)
    assert any(line.startswith("app/logs/app.log.1: atime_ns") for line in found), found
    assert any(line.startswith("app/.env: mode") for line in found), found


@pytest.mark.slow
def test_no_cadence_writes_to_the_target(sandbox_factory, tmp_path):
    sb = sandbox_factory()
    config = sb.with_config(LOAD)
    for log in (sb.root / "app" / "logs").iterdir():  # atime <= mtime: a read would show
        os.utime(log, ns=(log.stat().st_mtime_ns, log.stat().st_mtime_ns))
    problems = []
    for cadence in ("daily", "weekly", "monthly"):
        before = digest(sb.root)
        run, _ = run_cadence(
            config, tmp_path / f"reports-{cadence}", cadence, bound_s(cadence, 2.0)
        )
        after = digest(sb.root)
        assert run.outcomes().get(READERS[cadence]) == "passed", run.outcomes()
        problems += [f"-m {cadence}: {line}" for line in changes(before, after, sb.root)]
    assert not problems, "\n".join(problems)
