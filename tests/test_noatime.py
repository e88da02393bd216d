"""Reading a target file leaves its atime as it was (O_NOATIME), on a real file system."""

from __future__ import annotations

import gzip
import os
import pwd
import tempfile
from pathlib import Path

import pytest

from opscheck.probes import noatime
from opscheck.probes.logs.files import LogFile, _open

PAST = 1_600_000_000  # atime == mtime: relatime updates atime on the next read


def _stale(path: Path) -> Path:
    os.utime(path, (PAST, PAST))
    return path


def test_a_plain_read_moves_atime_here(tmp_path):
    """The red half: on this file system a plain read does change atime (else the
    tests below would prove nothing)."""
    path = tmp_path / "app.log"
    path.write_bytes(b"line\n")
    _stale(path)
    path.read_bytes()
    if path.stat().st_atime_ns == PAST * 10**9:
        pytest.skip("this file system does not update atime on read (noatime mount)")


def test_open_binary_keeps_atime(tmp_path):
    path = tmp_path / "app.log"
    path.write_bytes(b"line\n" * 1000)
    _stale(path)
    with noatime.open_binary(path) as f:
        assert f.read() == b"line\n" * 1000
    assert noatime.read_bytes(path).count(b"\n") == 1000
    assert path.stat().st_atime_ns == PAST * 10**9


def test_compressed_log_keeps_atime_and_closes_its_file(tmp_path):
    path = tmp_path / "app.log.2.gz"
    path.write_bytes(gzip.compress(b"line\n" * 1000))
    _stale(path)
    before = len(os.listdir("/proc/self/fd"))
    with _open(LogFile(path, "gz", 0, 0)) as fh:
        assert fh.read() == b"line\n" * 1000
    assert len(os.listdir("/proc/self/fd")) == before, "the raw file was left open"
    assert path.stat().st_atime_ns == PAST * 10**9


def test_errors_are_those_of_open(tmp_path):
    with pytest.raises(FileNotFoundError):
        noatime.open_binary(tmp_path / "absent")
    with pytest.raises(IsADirectoryError):
        noatime.open_binary(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to read as another user")
def test_not_the_owner_reads_anyway():
    """O_NOATIME is EPERM for a non-owner: the read falls back to a plain open."""
    with tempfile.TemporaryDirectory() as tmp:  # pytest's tmp_path is root's only (0700)
        os.chmod(tmp, 0o755)
        path = Path(tmp) / "shared.log"
        path.write_bytes(b"shared\n")
        path.chmod(0o644)
        _read_as_nobody(path)


def _read_as_nobody(path: Path) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    with pytest.raises(PermissionError):  # the red half: O_NOATIME alone is refused
        _as_user(nobody, lambda: os.close(os.open(path, os.O_RDONLY | os.O_NOATIME)))
    assert _as_user(nobody, lambda: noatime.read_bytes(path)) == b"shared\n"


def _as_user(uid: int, action):
    """`action()` in a forked child running as `uid`; its value, or its OSError raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        try:
            os.setresuid(uid, uid, uid)
            value = action()
            os.write(write, b"ok" + (value or b""))
        except OSError as exc:
            os.write(write, b"er%d" % exc.errno)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        got = f.read()
    os.waitpid(pid, 0)
    if got.startswith(b"er"):
        raise OSError(int(got[2:]), os.strerror(int(got[2:])))
    return got[2:]
