"""The sandbox's faults: each breaks exactly one thing a check exists to catch.

File faults change the laid-out deployment once; server faults change how the
replica answers (read by `app.py` from `run/sandbox.json`); `down` starts nothing.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from opscheck.sandbox.layout import Layout, backup_names, night_stamps, rewrite_recent


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str  # "file", "server" or "process"
    what: str  # what it breaks, for `--help`
    apply: Callable[[Layout, datetime], None] | None = None


def _env_mode(lay: Layout, now: datetime) -> None:
    lay.env_file.chmod(0o644)


def _env_owner(lay: Layout, now: datetime) -> None:
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise SystemExit("env-owner: this machine has no 'nobody' user") from None
    try:
        os.chown(lay.env_file, nobody.pw_uid, nobody.pw_gid)
    except PermissionError:
        raise SystemExit("env-owner: changing a file's owner needs root") from None


def _dir_mode(lay: Layout, now: datetime) -> None:
    lay.logs.chmod(0o777)


def _stale_backup(lay: Layout, now: datetime) -> None:
    """The last two nights' backups never ran: the newest set is over 24 h old."""
    for night in night_stamps(now, 2):
        for name in backup_names(night.strftime("%Y%m%d_%H%M%S")).values():
            (lay.backups / name).unlink(missing_ok=True)


def _corrupt_backup(lay: Layout, now: datetime) -> None:
    """The newest chroma_db archive is cut off in the middle of its gzip stream."""
    newest = night_stamps(now, 1)[0].strftime("%Y%m%d_%H%M%S")
    path = lay.backups / backup_names(newest)["chroma_db"]
    st = path.stat()
    with open(path, "r+b") as f:
        f.truncate(max(1, st.st_size // 2))
    os.utime(path, (st.st_atime, st.st_mtime))


def _error_heavy_log(lay: Layout, now: datetime) -> None:
    """The last 24 h and more of the log: one request in ten answered 500."""
    rewrite_recent(lay.logs, now, requests=600, error_share=0.10)


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("down", "server", "the service is not running (nothing listens on its port)"),
        Fault("slow", "server", "every answer takes longer than service.timeout_s"),
        Fault("errors", "server", "a share of API answers are 500 (--error-share, default 5 %)"),
        Fault("degraded", "server", "/health answers 200 but vector_database is in error"),
        Fault("health-500", "server", "/health answers 500 HEALTH_CHECK_FAILED"),
        Fault("cpu-hog", "process", "busy loops on every core for up to 120 s"),
        Fault("env-mode", "file", ".env is mode 644", _env_mode),
        Fault("env-owner", "file", ".env is owned by nobody (needs root)", _env_owner),
        Fault("dir-mode", "file", "logs/ is mode 777", _dir_mode),
        Fault("stale-backup", "file", "the last two nightly backups are missing", _stale_backup),
        Fault(
            "corrupt-backup", "file", "the newest chroma_db archive is truncated", _corrupt_backup
        ),
        Fault(
            "error-heavy-log",
            "file",
            "10 % of requests since yesterday 00:00 failed with 500",
            _error_heavy_log,
        ),
    )
}


def check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise SystemExit(f"unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}")
