"""A host read through testinfra (ssh://, paramiko://, docker://, ansible:// ...).

`RemoteHost` answers what `LocalHost` answers, with the same arithmetic, from commands run
on the host through a testinfra host: `/proc/stat` sampled twice in one command (busy as
psutil counts it), `/proc/meminfo`, `stat -f` and `stat -c`. Nothing is installed or
written there; every command is POSIX sh and coreutils under `LC_ALL=C`.

Every failure is a `ProbeError` of one line naming the host by its label (never a password
or a key path) and the cause, within `timeout_s`: testinfra's subprocess backends are
bounded here (each command's local process runs in its own process group, registered with
`lifecycle` and killed at the deadline), and every command waits at most the deadline in
any backend (paramiko's banner wait included). A host whose connection failed is not asked
again this run: its later checks fail at once with the first cause.

Speed: `Fleet.warm` reads every remote host at once, each in one command (`snapshot`:
every read the selected checks will make, fenced sections with their own exit codes), so a
run grows with its slowest host, not with the number of hosts; a read the snapshot did not
hold runs as its own command. ssh:// hosts share one connection per host: a ControlMaster
socket in a private scratch dir, kept up by ControlPersist and stopped (`ssh -O exit`, then
by PID) at the session's end; its PID is registered so SIGTERM stops it too. paramiko://
keeps testinfra's one client per host.
"""

from __future__ import annotations

import math
import os
import re
import select
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import psutil

from opscheck import lifecycle, scrub
from opscheck.probes import ProbeError
from opscheck.probes.backups import Listed
from opscheck.probes.host import DiskUsage, FileState, LocalHost, host_label, is_local

MARGIN_S = 2.0  # beyond the deadline, for a backend that does not bound itself
MIN_RATE_BPS = 1 << 20  # a stream slower than this (after timeout_s) is a trickling host
PIECE = 1 << 16  # a stream's read(-1) gathers pieces of this size
TICK_S = 0.1  # how often a stream's wait for bytes looks whether it was stopped
PERSIST_S = 60  # an idle master outlives its last command this long (a killed run's too)
SSH_SCHEMES = ("ssh",)
# testinfra backends that run a local process (ssh, docker exec ...): their stdout streams
_LOCAL_PROCESS_BACKENDS = (
    "SshBackend",
    "DockerBackend",
    "PodmanBackend",
    "KubectlBackend",
    "LxcBackend",
    "OpenShiftBackend",
    "LocalBackend",
)
WRITING_SCHEMES = ("safe-ssh",)  # testinfra's wrapper writes mktemp files on the host


def _in_thread(fn: Callable[..., Any], *args: Any) -> Future:
    """`fn(*args)` in a daemon thread of its own: a backend stuck past its deadline (a
    paramiko banner wait) never holds up the run's exit, as a pool's joined worker would."""
    future: Future = Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=work, name="opscheck-host", daemon=True).start()
    return future


@dataclass(frozen=True)
class Options:
    """How to reach the hosts: `[hosts]` keys (or testinfra's command-line options)."""

    ssh_config: str = ""
    ssh_identity_file: str = ""
    ansible_inventory: str = ""
    timeout_s: float = 10.0


class _Unreachable(ProbeError):
    """The connection itself failed: the host is not asked again this run."""


def scheme(spec: str) -> str:
    return spec.split("://", 1)[0] if "://" in spec else "paramiko"


# ---- parsing (pure: the same arithmetic as psutil, on the host's own text) ---------------


def cpu_busy_percent(first: str, second: str) -> float:
    """CPU busy % between two `/proc/stat` "cpu " lines, as psutil.cpu_percent counts:
    per-field deltas (negative ones as 0), total less guest and guest_nice (already in
    user and nice), busy = total - idle - iowait, rounded to 0.1."""
    a, b = _cpu_fields(first), _cpu_fields(second)
    n = min(len(a), len(b), 10)
    delta = [max(0, b[i] - a[i]) for i in range(n)] + [0] * (10 - n)
    total = sum(delta) - delta[8] - delta[9]
    busy = total - delta[3] - delta[4]
    if total <= 0:
        return 0.0
    return round(100.0 * busy / total, 1)


def _cpu_fields(line: str) -> list[int]:
    parts = line.split()
    if not parts or parts[0] != "cpu" or len(parts) < 5:
        raise ValueError(f"not a /proc/stat cpu line: {line[:60]!r}")
    return [int(x) for x in parts[1:11]]


def memory_used_percent(meminfo: str) -> float:
    """(MemTotal - MemAvailable) / MemTotal, % rounded to 0.1, as psutil's percent."""
    values = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        if rest.split():
            values[key.strip()] = int(rest.split()[0])
    total, avail = values.get("MemTotal"), values.get("MemAvailable")
    if not total or avail is None:
        raise ValueError("no MemTotal and MemAvailable in /proc/meminfo (kernel before 3.14?)")
    return round(100.0 * (total - avail) / total, 1)


def statfs_usage(mount: str, fields: str) -> DiskUsage:
    """`stat -f -c '%S %b %f %a %c %d'` as LocalHost.disk_usage counts statvfs (Linux's
    f_favail is f_ffree)."""
    frsize, blocks, bfree, bavail, files, ffree = (int(x) for x in fields.split())
    used = (blocks - bfree) * frsize
    usable = used + bavail * frsize
    space = 100.0 * used / usable if usable else 0.0
    inodes = None
    if files:
        inodes_used = files - ffree
        inodes = round(100.0 * inodes_used / (inodes_used + ffree or 1), 2)
    return DiskUsage(mount, round(space, 2), inodes, bavail * frsize)


def file_state(path: str, out: str) -> FileState:
    """`stat -L -c '%f %u %U'`: raw mode in hex, uid, user name (UNKNOWN: none)."""
    raw, uid, name = out.split()
    mode = int(raw, 16)
    return FileState(
        path,
        exists=True,
        is_dir=(mode & 0o170000) == 0o040000,
        mode=mode & 0o7777,
        owner=uid if name == "UNKNOWN" else name,
    )


# ---- reads: one command each, alone or batched into one snapshot -----------------------

_C = "export LC_ALL=C; "
_CPU = "grep '^cpu ' /proc/stat && sleep {s} && grep '^cpu ' /proc/stat"
_MEM = "cat /proc/meminfo"
# The mount holding a path or its nearest existing ancestor, as LocalHost.mount_of.
_MOUNT = (
    'p={p}; while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname -- "$p"); done; '
    'p=$(readlink -f -- "$p") && stat -c %m -- "$p"'
)
_DISK = "m=$({mount}) && printf '%s\\n' \"$m\" && stat -f -c '%S %b %f %a %c %d' -- \"$m\""
_FILE = "stat -L -c '%f %u %U' -- {p}"
_LIST = "find -L {p} -mindepth 1 -maxdepth 1 -printf '%y %s %T@ %f\\0'"


@dataclass(frozen=True)
class Read:
    """One thing read from a host: its key, its command, how its output becomes a value."""

    key: str
    what: str  # for a message: "sample /proc/stat", "stat /app/.env"
    command: str
    finish: Callable[[int, str, str], Any]  # (exit code, stdout, stderr) -> value
    extra_s: float = 0.0  # beyond timeout_s (the CPU sample's own length)


def cpu_read(sample_s: float) -> Read:
    def finish(rc: int, out: str, err: str) -> float:
        _ok(rc, err)
        lines = [line for line in out.splitlines() if line.startswith("cpu ")]
        if len(lines) != 2:
            raise ValueError(f"expected two cpu lines, got {len(lines)}")
        return cpu_busy_percent(*lines)

    return Read(
        f"cpu {sample_s:g}", "sample /proc/stat", _CPU.format(s=f"{sample_s:g}"), finish, sample_s
    )


def memory_read() -> Read:
    def finish(rc: int, out: str, err: str) -> float:
        _ok(rc, err)
        return memory_used_percent(out)

    return Read("memory", "read /proc/meminfo", _MEM, finish)


def mount_read(path: str) -> Read:
    def finish(rc: int, out: str, err: str) -> str:
        _ok(rc, err)
        return out.strip().splitlines()[-1]

    return Read(
        f"mount {path}", f"find the mount of {path}", _MOUNT.format(p=shlex.quote(path)), finish
    )


def disk_read(path: str) -> Read:
    def finish(rc: int, out: str, err: str) -> DiskUsage:
        _ok(rc, err)
        lines = out.strip().splitlines()
        return statfs_usage(lines[-2], lines[-1])

    command = _DISK.format(mount=_MOUNT.format(p=shlex.quote(path)))
    return Read(f"disk {path}", f"stat -f the file system of {path}", command, finish)


def file_read(path: str) -> Read:
    def finish(rc: int, out: str, err: str) -> FileState:
        if rc != 0:
            why = _last_line(err).rsplit(": ", 1)[-1] or f"stat exited {rc}"
            if why == "No such file or directory":
                return FileState(path, exists=False, error="does not exist")
            return FileState(path, exists=False, error=why)
        return file_state(path, out.strip().splitlines()[-1])

    return Read(f"file {path}", f"stat {path}", _FILE.format(p=shlex.quote(path)), finish)


def list_read(path: str) -> Read:
    def finish(rc: int, out: str, err: str) -> list[Listed]:
        if rc != 0:
            raise _Failed(_last_line(err).rsplit(": ", 1)[-1] or f"find exited {rc}")
        rows = []
        for record in filter(None, out.split("\0")):
            kind, size, mtime, name = record.split(" ", 3)
            rows.append(Listed(name, int(size), float(mtime), kind == "f"))
        return rows

    return Read(f"list {path}", f"list {path}", _LIST.format(p=shlex.quote(path)), finish)


class _Failed(Exception):
    """A read's command exited non-zero: its stderr's last line says why."""


def _ok(rc: int, err: str) -> None:
    if rc != 0:
        raise _Failed(_last_line(err) or f"exit code {rc}")


def snapshot_command(reads: list[Read], token: str) -> str:
    """All `reads` in one command, each section fenced by `token` lines with its exit
    code (stderr merged into the section: the error text when it failed)."""
    parts = [_C.strip()]
    for n, read in enumerate(reads):
        parts.append(
            f"printf '\\n%s %s\\n' {token} {n}; ( {read.command} ) 2>&1; "
            f"printf '\\n%s rc %s\\n' {token} $?"
        )
    return "\n".join(parts)


def split_snapshot(out: str, count: int, token: str) -> dict[int, tuple[int, str]]:
    """Section number -> (exit code, text) of a snapshot's output; missing ones absent."""
    found: dict[int, tuple[int, str]] = {}
    current, lines = -1, []
    for line in out.splitlines():
        if not line.startswith(token + " "):
            lines.append(line)
            continue
        word = line.split()[1:]
        if word[0] == "rc" and current >= 0 and len(word) == 2 and word[1].isdigit():
            found[current] = (int(word[1]), "\n".join(lines).strip("\n"))
            current = -1
        elif word[0].isdigit() and int(word[0]) < count:
            current, lines = int(word[0]), []
    return found


class RemoteHost:
    """One host of the fleet, reached through testinfra; the same methods as LocalHost."""

    def __init__(self, spec: str, opts: Options, control_path: str = "") -> None:
        self.spec = spec
        self.name = host_label(spec)
        self.opts = opts
        self.control_path = control_path
        self._host: Any = None
        self._lock = threading.Lock()
        self._broken = ""
        self._answered = False  # a command has run: the connection is up
        self._deadline = 0.0
        self._budget_now = 0.0
        self._master_pid = 0
        self._snapshot: Future | None = None
        self._snapshot_budget = 0.0
        self._cache: dict[str, tuple[int, str]] = {}
        self._capturing = threading.local()

    # -- the checks' interface (as LocalHost) --

    def cpu_percent(self, sample_s: float) -> float:
        """CPU busy % over all cores, sampled over `sample_s` seconds on the host."""
        return self.read(cpu_read(sample_s))

    def memory_percent(self) -> float:
        """Memory in use (total less available), % of total."""
        return self.read(memory_read())

    def mount_of(self, path: str) -> str:
        """The mount point holding `path` (or its nearest existing ancestor)."""
        return self.read(mount_read(path))

    def disk_usage(self, path: str) -> DiskUsage:
        """Space and inode use of the file system holding `path`."""
        return self.read(disk_read(path))

    def file(self, path: str) -> FileState:
        """Mode, owner and kind of `path` (following symlinks, as os.stat)."""
        return self.read(file_read(path))

    def list_dir(self, path: str) -> list[Listed]:
        """The entries of a directory: name, size, mtime, regular file or not (symlinks
        followed, as os.scandir's is_file and stat)."""
        return self.read(list_read(path))

    # -- reading --

    def read(self, read: Read) -> Any:
        """`read`'s value: from this run's snapshot when it holds it (each once), else by
        its own command. Any failure is a ProbeError naming the host."""
        self._await_snapshot()
        if read.key in self._cache:
            rc, text = self._cache.pop(read.key)
            return self._finish(read, rc, text, text)
        rc, out, err = self.run_rc(read.what, _C + read.command, self._budget(read.extra_s))
        return self._finish(read, rc, out, err)

    def _finish(self, read: Read, rc: int, out: str, err: str) -> Any:
        try:
            return read.finish(rc, out, err)
        except _Failed as exc:
            raise ProbeError(f"host {self.name}: {read.what}: {scrub.scrub(str(exc))}") from None
        except (ValueError, IndexError) as exc:
            raise ProbeError(f"host {self.name}: {read.what}: cannot parse ({exc})") from None

    def prefetch(self, reads: list[Read]) -> None:
        """Run every read in one command, now, in the background (connecting on the way):
        one shell and one round trip per host, every host at once."""
        if self._snapshot is None and reads:
            self._snapshot_budget = self._snapshot_budget_for(reads)
            self._snapshot = _in_thread(self._take_snapshot, reads)

    def _take_snapshot(self, reads: list[Read]) -> None:
        token = f"@@opscheck-{os.urandom(6).hex()}"
        budget = self._snapshot_budget_for(reads)
        try:
            rc, out, _ = self.run_rc("read the host", snapshot_command(reads, token), budget)
        except ProbeError:
            return  # unreachable: every read says so; anything else: read one by one
        if rc == 0:
            sections = split_snapshot(out, len(reads), token)
            self._cache.update({reads[n].key: v for n, v in sections.items()})

    def _snapshot_budget_for(self, reads: list[Read]) -> float:
        return self._budget(sum(r.extra_s for r in reads) + 0.05 * len(reads))

    def _await_snapshot(self) -> None:
        pending, self._snapshot = self._snapshot, None
        if pending is not None:
            with suppress(Exception):
                pending.result(timeout=self._snapshot_budget + 2 * MARGIN_S)

    def close(self) -> None:
        """Stop the ssh master (politely, then by PID); close a paramiko connection."""
        if self._snapshot is not None:
            self._snapshot.cancel()
        if self.control_path:
            lifecycle.on_stop(self.control_path, None)
            _ssh_control(self.control_path, "exit")
        if self._master_pid:
            _stop_master(self._master_pid, self.control_path)
            lifecycle.forget(self._master_pid)
            self._master_pid = 0
        backend = getattr(self._host, "backend", None)
        client = vars(backend).get("client") if backend is not None else None  # paramiko's
        if client is not None:
            with suppress(Exception):
                client.close()

    # -- streaming a command's output --

    def stream_budget(self, size: int) -> float:
        """How long a stream of `size` bytes may take: timeout_s, plus the bytes at
        MIN_RATE_BPS (a host sending slower than that is trickling)."""
        return self.opts.timeout_s + size / MIN_RATE_BPS

    @contextmanager
    def stream(self, what: str, command: str, budget_s: float) -> Iterator[Stream]:
        """The stdout of `command` on the host, read as it arrives (never held whole).

        The stream stops at the deadline, or when no byte came for timeout_s; then, or
        when the command failed (its stderr's last line), the block's end raises a
        ProbeError naming the host and `what`, whatever the reader made of the bytes."""
        if not self._answered or self._broken:
            self.run_rc(what, "true")  # connected, or the host's one-line failure
        source = self._open_stream(what, _C + command)
        deadline = time.monotonic() + budget_s
        out = Stream(source.stdout, self.opts.timeout_s, deadline, getattr(source, "fd", None))
        key = f"stream {id(source)}"
        lifecycle.on_stop(key, lambda: out.interrupt(source.stop))  # a thread's stream too
        watch = threading.Thread(target=out.watch, args=(source.stop,), daemon=True)
        watch.start()
        failed: BaseException | None = None
        try:
            yield out
        except Exception as exc:
            failed = exc
        finally:
            out.done.set()
            lifecycle.on_stop(key, None)
            rc, err = source.finish(out.eof)
        if out.stopped:
            why = out.stopped
        elif rc and (out.eof or (failed is not None and rc != 141)):
            why = _last_line(err) or f"exit code {rc}"  # the command failed: its own words
        else:  # done, or stopped early by the reader (whose error, if any, stands: words
            why = ""  # on the stderr of a command that did not fail, a banner, are no cause)
        if why:
            raise ProbeError(f"host {self.name}: {what}: {scrub.scrub(why)}") from None
        if failed is not None:
            raise failed

    def _open_stream(self, what: str, command: str) -> _Source:
        backend = self._host.backend
        kind = type(backend).__name__
        if kind == "ParamikoBackend":  # a channel of its own on the connection
            cmd = backend.encode(backend.get_command(command))
            return _ChannelSource(backend.client, cmd, self.opts.timeout_s, self.name)
        if kind not in _LOCAL_PROCESS_BACKENDS:  # (asking would run it whole, unbounded)
            raise ProbeError(
                f"host {self.name}: {what}: {scheme(self.spec)}:// cannot stream a file's"
                " content (use ssh://, paramiko:// or docker://)"
            )
        self._capturing.on = True
        try:
            backend.run(command)
        except _Captured as captured:
            return _ProcessSource(captured.cmd, f"{what} on {self.name}")
        finally:
            self._capturing.on = False
        raise ProbeError(f"host {self.name}: {what}: the command line could not be made")

    # -- running commands --

    def run_rc(self, what: str, command: str, budget_s: float | None = None) -> tuple:
        """(exit code, stdout, stderr) of `command` on the host, within the deadline."""
        budget = self._budget(0) if budget_s is None else budget_s
        with self._lock:
            if self._broken:
                raise ProbeError(self._broken)
            self._deadline = time.monotonic() + budget
            self._budget_now = budget
            job = _in_thread(self._run_now, command)
            try:
                return job.result(timeout=budget + MARGIN_S)
            except FutureTimeout:
                raise self._fail(f"no answer within {budget:g} s") from None
            except _Unreachable as exc:
                raise self._fail(str(exc)) from None

    def _run_now(self, command: str) -> tuple[int, str, str]:
        host = self._connect()
        try:
            result = host.run(command)
        except ProbeError:
            raise
        except RuntimeError as exc:  # testinfra's ssh backend: exit code 255, ssh failed
            out = exc.args[0] if exc.args else None
            raise _Unreachable(_why(getattr(out, "stderr_bytes", b"") or b"ssh failed")) from None
        except Exception as exc:  # paramiko, docker, ansible: the connection failed
            raise _Unreachable(_exception_text(exc)) from None
        err = _text(result.stderr_bytes)
        if result.rc == 127 and scheme(self.spec) in SSH_SCHEMES and _tool_missing(err):
            raise _Unreachable(f"{_tool_missing(err)} is not installed here{_SSHPASS_HINT}")
        if self.control_path and not self._master_pid:
            self._register_master()
        self._answered = True
        return result.rc, _text(result.stdout_bytes), err

    def _fail(self, cause: str) -> ProbeError:
        stamp = datetime.now().strftime("%H:%M:%S")
        text = f"host {self.name}: {scrub.scrub(cause)}"
        self._broken = f"{text} (at {stamp}; not asked again this run)"
        return ProbeError(text)

    def _budget(self, extra_s: float) -> float:
        return self.opts.timeout_s + extra_s

    def _connect(self):
        if self._host is None:
            if self.control_path:  # SIGTERM before the master's PID is known: ask it to go
                path = self.control_path
                lifecycle.on_stop(path, lambda: _ssh_control(path, "exit"))
            self._host = _testinfra_host(self.spec, self.opts, self.control_path)
            self._bound(self._host.backend)
        return self._host

    def _bound(self, backend) -> None:
        """Each local process the backend starts (ssh, docker exec ...) runs in its own
        process group, registered, and is killed at the command's deadline."""

        def run_local(command: str, *args: str):
            cmd = backend.encode(backend.quote(command, *args))
            if getattr(self._capturing, "on", False):
                raise _Captured(cmd)
            rc, out, err = self._subprocess(cmd)
            return backend.result(rc, cmd, out, err)

        backend.run_local = run_local

    def _subprocess(self, cmd: bytes) -> tuple[int, bytes, bytes]:
        proc = subprocess.Popen(
            cmd,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        lifecycle.register(proc.pid, f"command on {self.name}", group=True)
        try:
            out, err = proc.communicate(timeout=max(0.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise _Unreachable(f"no answer within {self._budget_now:g} s") from None
        finally:
            lifecycle.forget(proc.pid)
        return proc.returncode, out, err

    def _register_master(self) -> None:
        """The master's PID (it left our process tree): stopped on SIGTERM and at the end."""
        pid = _ssh_control(self.control_path, "check")
        if pid and _is_master(pid, self.control_path):
            self._master_pid = pid
            lifecycle.register(pid, f"ssh master for {self.name}")


class _Captured(Exception):
    """A backend's local command line, caught instead of run (to stream its output)."""

    def __init__(self, cmd: bytes) -> None:
        super().__init__("captured")
        self.cmd = cmd


class Stream:
    """A command's stdout as a binary file, with the deadline and idle limit watched.

    Read from a pipe (`fd`), a read returns what has arrived (it may be short) and gives
    b"" once the watch stopped the stream, even while another process (an ssh master,
    which holds the pipe's other end) keeps it open. Idle is time spent waiting for a
    byte, not the reader's own work between reads."""

    def __init__(self, raw: IO[bytes], idle_s: float, deadline: float, fd: int | None = None):
        self._raw, self._fd = raw, fd
        self.idle_s, self.deadline = idle_s, deadline
        self.waiting = 0.0  # since when a read waits for bytes (0: none waits)
        self.read_bytes = 0
        self.eof = False
        self.stopped = ""  # why the watch stopped the command ("" if it did not)
        self.done = threading.Event()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(PIECE), b""))
        data = self._take(n)
        self._note(len(data), n)
        return data

    def readinto(self, buf) -> int:
        """Fills `buf` (a pipe gives 64 KiB a read; the scanners want their whole chunk)."""
        view, filled = memoryview(buf).cast("B"), 0
        while filled < len(view):
            data = self._take(len(view) - filled)
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
        self._note(filled, len(view))
        return filled

    def _take(self, n: int) -> bytes:
        if not n or self.stopped:
            return b""
        self.waiting = time.monotonic()
        try:
            if self._fd is None:
                return self._raw.read(n)
            while not self.stopped:
                ready, _, _ = select.select([self._fd], [], [], TICK_S)
                if ready:
                    return os.read(self._fd, n)
            return b""
        finally:
            self.waiting = 0.0

    def _note(self, got: int, wanted: int | None) -> None:
        self.read_bytes += got
        if got == 0 and wanted != 0 and not self.stopped:
            self.eof = True

    def close(self) -> None:
        """(The source closes it.)"""

    def interrupt(self, stop: Callable[[], None]) -> None:
        """The run was stopped (SIGTERM): the reader gets b"" at once, the command ends."""
        self.stopped = "the run was interrupted"
        stop()

    def watch(self, stop: Callable[[], None]) -> None:
        """Stop the command at the deadline, or after idle_s waiting without a byte."""
        while not self.done.wait(0.2):
            now, waiting = time.monotonic(), self.waiting
            if now > self.deadline:
                self.stopped = f"stream stopped at its deadline after {self.read_bytes} bytes"
            elif waiting and now - waiting > self.idle_s:
                self.stopped = (
                    f"no byte for {self.idle_s:g} s (stream stopped after {self.read_bytes} bytes)"
                )
            if self.stopped:
                stop()
                return


class _Source:
    stdout: IO[bytes]

    def stop(self) -> None: ...

    def finish(self, eof: bool) -> tuple[int, str]:
        """(exit code, stderr) once the reader is done; stopped first if it did not reach
        the end (an exit code of 141, SIGPIPE, then)."""
        raise NotImplementedError


class _ProcessSource(_Source):
    """A backend's local process (ssh, docker exec ...), in its own process group. Its
    pipes are read with select: an ssh master that was handed them keeps them open after
    the process is killed, so no read or close here waits for them to close."""

    def __init__(self, cmd: bytes, what: str) -> None:
        self.proc = subprocess.Popen(
            cmd,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        lifecycle.register(self.proc.pid, what, group=True)
        self.stdout = self.proc.stdout
        self.fd = self.proc.stdout.fileno()
        self._err = bytearray()
        self._closing = threading.Event()
        self._drain = threading.Thread(target=self._read_err, daemon=True)
        self._drain.start()

    def _read_err(self) -> None:
        fd = self.proc.stderr.fileno()
        while not self._closing.is_set():
            ready, _, _ = select.select([fd], [], [], TICK_S)
            chunk = os.read(fd, 1 << 16) if ready else None
            if chunk == b"":
                return
            if chunk:
                self._err += chunk
                del self._err[: max(0, len(self._err) - (1 << 16))]

    def stop(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def finish(self, eof: bool) -> tuple[int, str]:
        """(exit code, stderr); one not read to its end is stopped first, its code then
        141 unless it had already exited (with its own code)."""
        exited = self.proc.poll()
        try:
            if not eof:
                self.stop()
                self._closing.set()  # what it wrote on stderr so far is its word
            try:
                rc = self.proc.wait(timeout=MARGIN_S)
            except subprocess.TimeoutExpired:
                self.stop()
                rc = self.proc.wait()
            self._drain.join(MARGIN_S)
            self._closing.set()
            self._drain.join()
        finally:
            lifecycle.forget(self.proc.pid)
            self.proc.stdout.close()
            self.proc.stderr.close()
        if not eof:
            rc = 141 if exited is None else exited
        return rc, _text(bytes(self._err))


class _ChannelOut:
    """A channel's stdout: a read returns what has arrived, b"" at the end or once closed."""

    def __init__(self, chan) -> None:
        self.chan = chan

    def read(self, n: int) -> bytes:
        while True:  # (closing the channel, as `stop` does, ends the wait with b"")
            with suppress(TimeoutError):
                return self.chan.recv(n)

    def close(self) -> None:
        """(The source closes the channel.)"""


class _ChannelSource(_Source):
    """A paramiko channel of its own on the host's connection; opening it, starting the
    command and waiting for its exit status are each bounded by timeout_s."""

    def __init__(self, client, cmd: bytes, timeout_s: float, name: str) -> None:
        self.chan = None
        try:
            self.chan = client.get_transport().open_session(timeout=timeout_s)
            _in_thread(self.chan.exec_command, cmd).result(timeout=timeout_s)
        except Exception as exc:
            if self.chan is not None:
                self.chan.close()
            why = "no answer" if isinstance(exc, FutureTimeout) else _exception_text(exc)
            raise ProbeError(f"host {name}: cannot start a stream: {why}") from None
        self.chan.settimeout(TICK_S)
        self.stdout = _ChannelOut(self.chan)
        self.timeout_s = timeout_s

    def stop(self) -> None:
        self.chan.close()

    def finish(self, eof: bool) -> tuple[int, str]:
        if not eof:
            rc = self.chan.recv_exit_status() if self.chan.exit_status_ready() else 141
            self.stop()
            return rc, ""
        self.chan.settimeout(MARGIN_S)
        err = b""
        with suppress(TimeoutError):
            while chunk := self.chan.recv_stderr(1 << 16):
                err += chunk
        ended = self.chan.status_event.wait(self.timeout_s)
        rc = self.chan.recv_exit_status() if ended else -1
        self.chan.close()
        return rc, _text(err) if ended else f"no exit status within {self.timeout_s:g} s"


def _testinfra_host(spec: str, opts: Options, control_path: str):
    """A testinfra host for `spec`, made fresh (testinfra's own cache would hand a closed
    connection to a later run in the same process); ansible:// resolves to the host's own
    ssh/paramiko/local connection from the inventory, as testinfra does."""
    import testinfra.backend
    import testinfra.host

    kind = scheme(spec)
    kw: dict[str, Any] = {}
    if opts.ssh_config:
        kw["ssh_config"] = opts.ssh_config
    if opts.ssh_identity_file:
        kw["ssh_identity_file"] = opts.ssh_identity_file
    if kind in ("ssh", "safe-ssh", "paramiko"):
        kw["timeout"] = max(1, math.ceil(opts.timeout_s))
    if kind in SSH_SCHEMES:
        kw.update(_ssh_options(spec, opts, control_path))
    if kind == "ansible":
        if opts.ansible_inventory:
            kw["ansible_inventory"] = opts.ansible_inventory
        return _ansible_host(spec, opts, control_path, kw)
    if kind not in ("ssh", "safe-ssh", "paramiko", "ansible"):
        kw = {}
    backend = testinfra.backend.get_backend(spec, **kw)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


def _ssh_options(spec: str, opts: Options, control_path: str) -> dict[str, Any]:
    """Connection reuse and bounded waits for testinfra's ssh backend."""
    alive = max(1, math.ceil(opts.timeout_s / 2))
    extra = [
        f"-o ServerAliveInterval={alive}",
        "-o ServerAliveCountMax=2",
        "-o ConnectionAttempts=1",
    ]
    if not _has_password(spec):
        extra.append("-o BatchMode=yes")  # never a prompt on a terminal (sshpass needs one)
    kw: dict[str, Any] = {"ssh_extra_args": " ".join(extra), "controlpersist": PERSIST_S}
    if control_path:
        kw["controlpath"] = control_path
    return kw


def _ansible_host(spec: str, opts: Options, control_path: str, kw: dict[str, Any]):
    import testinfra.backend
    import testinfra.backend.ssh
    import testinfra.host

    backend = testinfra.backend.get_backend(spec, **kw)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    inner = backend.ansible_runner.get_host(
        backend.host,
        ssh_config=opts.ssh_config or None,
        ssh_identity_file=kw.get("ssh_identity_file"),
    )
    if inner is None:  # a connection testinfra runs through ansible itself
        return host
    if isinstance(inner.backend, testinfra.backend.ssh.SshBackend):
        _tune_ssh(inner.backend, opts, control_path)
    return inner


def _tune_ssh(backend, opts: Options, control_path: str) -> None:
    """Our bounded waits and connection reuse on an ssh backend testinfra made from an
    inventory (its own ssh args kept; testinfra caches it, so this is idempotent)."""
    base = vars(backend).setdefault("_opscheck_extra_args", backend.ssh_extra_args or "")
    more = _ssh_options(backend.get_pytest_id(), opts, control_path)
    backend.ssh_extra_args = " ".join(filter(None, [base, more["ssh_extra_args"]]))
    if control_path and "controlpath" not in base.lower():
        backend.controlpath = control_path
        backend.controlpersist = PERSIST_S
    backend.timeout = max(1, math.ceil(opts.timeout_s))


_SSHPASS_HINT = " (ssh:// with a password needs sshpass; a key, or paramiko://, does not)"


def _tool_missing(stderr: str) -> str:
    """`sshpass` or `ssh` when the local shell could not find it, else ""."""
    found = re.search(r"\b(sshpass|ssh): (?:command )?not found", stderr)
    return found.group(1) if found else ""


def _has_password(spec: str) -> bool:
    rest = spec.split("://", 1)[-1].split("?", 1)[0]
    return "@" in rest and ":" in rest[: rest.rfind("@")]


def _ssh_control(control_path: str, command: str) -> int:
    """`ssh -O check|exit` on a control socket; the master's PID for check (0: none)."""
    if not os.path.exists(control_path):
        return 0
    try:
        proc = subprocess.run(
            ["ssh", "-F", "/dev/null", "-o", f"ControlPath={control_path}", "-O", command, "x"],
            capture_output=True,
            text=True,
            timeout=5,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    found = re.search(r"pid=(\d+)", proc.stderr)
    return int(found.group(1)) if found else 0


def _is_master(pid: int, control_path: str) -> bool:
    try:
        return control_path in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def _stop_master(pid: int, control_path: str, grace_s: float = 2.0) -> None:
    """Wait for the master to go after `-O exit`; SIGTERM, then SIGKILL, by PID if not."""
    deadline = time.monotonic() + grace_s
    for sig in (signal.SIGTERM, signal.SIGKILL):
        while time.monotonic() < deadline and _is_master(pid, control_path):
            time.sleep(0.02)
        if not _is_master(pid, control_path):
            return
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace_s


def _text(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def _last_line(text: str | bytes) -> str:
    lines = [line.strip() for line in _text(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _why(stderr: bytes | str) -> str:
    """ssh's own reason, its last line: "Permission denied (publickey).", "...refused"."""
    line = _last_line(stderr)
    line = re.sub(r"^ssh: |^[^\s@:]+@[^\s:]+: ", "", line)
    return line.rstrip(".") or "ssh failed"


def _exception_text(exc: Exception) -> str:
    """A backend's exception in words, without its repr (which may quote a command)."""
    name = type(exc).__name__
    if name == "AuthenticationException":
        return f"Permission denied ({exc})"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{name}: {text}" if text else name


# ---- the fleet: every target of the run ---------------------------------------------------


class Fleet:
    """The run's hosts, made on first use, connected in parallel, closed at the end."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self._hosts: dict[str, LocalHost | RemoteHost] = {}
        self._stack = ExitStack()
        self._dir: Path | None = None
        self._lock = threading.Lock()

    def host(self, spec: str) -> LocalHost | RemoteHost:
        with self._lock:
            if spec not in self._hosts:
                self._hosts[spec] = LocalHost() if is_local(spec) else self._remote(spec)
            return self._hosts[spec]

    def warm(self, plan: dict[str, list[Read]]) -> None:
        """Read every remote host at once, each in one command (`plan`: spec -> reads)."""
        for spec, reads in plan.items():
            host = self.host(spec)
            if isinstance(host, RemoteHost):
                host.prefetch(reads)

    def close(self) -> None:
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            if isinstance(host, RemoteHost):
                host.close()
        if self._dir is not None:
            lifecycle.remove_tree(self._dir)
            self._dir = None
        self._stack.close()

    def _remote(self, spec: str) -> RemoteHost:
        path = ""
        if scheme(spec) in (*SSH_SCHEMES, "ansible"):
            path = str(self._control_dir() / str(len(self._hosts)))
        return RemoteHost(spec, self.opts, path)

    def _control_dir(self) -> Path:
        """A private dir for the control sockets, short enough for a socket path."""
        if self._dir is None:
            base = "/tmp" if os.path.isdir("/tmp") else None
            self._dir = Path(tempfile.mkdtemp(prefix="opscheck-ssh-", dir=base))
            self._stack.enter_context(lifecycle.scratch(self._dir))
        return self._dir


def expand(specs: list[str], opts: Options) -> list[tuple[str, str]]:
    """(spec, where it came from) for every target: an ansible:// group becomes one
    ansible://<host> per inventory host (testinfra's get_hosts); others stay as they are."""
    out: list[tuple[str, str]] = []
    for spec in specs:
        if scheme(spec) != "ansible":
            out.append((spec, spec))
            continue
        import testinfra

        kw = {"ansible_inventory": opts.ansible_inventory} if opts.ansible_inventory else {}
        try:
            hosts = testinfra.get_hosts([spec], **kw)
        except Exception as exc:
            why = _exception_text(exc)
            raise ProbeError(f"{spec}: cannot read the ansible inventory: {why}") from None
        query = spec.split("?", 1)[1] if "?" in spec else ""
        for h in hosts:
            out.append((f"ansible://{h.backend.host}" + (f"?{query}" if query else ""), spec))
    return out
