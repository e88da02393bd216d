"""One run per label at a time: an flock on `<reports>/<label>/.lock`.

A second run of the same label (cron overlap) exits at once with a usage error naming
the run that holds the lock. The kernel releases an flock when its holder dies, however
it dies (SIGKILL included), so a killed run never leaves a lock behind; the PID and
start time written into the file are only there to be named in the message. The lock's
file descriptor is not inherited by child processes (Python opens it non-inheritable).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest


class RunLock:
    """A held lock; `release` (or the process's end) lets the next run of the label in."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def acquire(path: Path, label: str) -> RunLock:
    """Take the label's lock without waiting, or a UsageError naming who holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise pytest.UsageError(
            f"cannot write reports in {path.parent}: {exc.strerror or exc}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise pytest.UsageError(
            f"another {label!r} run{holder} holds {path}; this run did not start"
        ) from None
    _note_holder(fd)
    return RunLock(path, fd)


def _holder(fd: int) -> str:
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f" (pid {int(doc['pid'])}, started {doc['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _note_holder(fd: int) -> None:
    """Who holds the lock, for the message a second run prints (best effort)."""
    doc = {"pid": os.getpid(), "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(doc).encode(), 0)
