"""What the run started and made, so that SIGTERM or SIGINT can undo it.

Code that starts a child process registers it (`register`, or `process_pool`, which
registers its workers), code that makes scratch registers the tree (`scratch`). The
plugin installs the handler for the run (`install`): on SIGTERM or SIGINT every
registered child is stopped by PID (SIGTERM, then SIGKILL after a short grace), then
any other descendant still alive, and `Interrupted` is raised in the main thread so that
the check in progress unwinds. `cleanup` (at the session's end) removes what scratch is
left and stops what still runs. A second signal stops the children again, raises nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from opscheck import scrub

GRACE_S = 2.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; the text says which ("interrupted (SIGTERM)")."""


@dataclass(frozen=True)
class Child:
    pid: int
    what: str
    group: bool  # leads its own process group (start_new_session): signal the group


_children: dict[int, Child] = {}
_stop_hooks: dict[str, Callable[[], None]] = {}
_scratch: dict[Path, None] = {}
_previous: dict[int, Any] = {}
_state = {"signal": ""}


def register(pid: int, what: str, group: bool = False) -> None:
    """A child process the run started; `group`: it leads a process group of its own."""
    _children[pid] = Child(pid, what, group)


def forget(pid: int) -> None:
    _children.pop(pid, None)


def on_stop(key: str, hook: Callable[[], None] | None) -> None:
    """Run `hook` before the children are stopped, for what left our process tree and
    has no PID known yet (an ssh master still forking off); None removes it."""
    if hook is None:
        _stop_hooks.pop(key, None)
    else:
        _stop_hooks[key] = hook


def children() -> list[Child]:
    return list(_children.values())


@contextmanager
def scratch(path: Path) -> Iterator[Path]:
    """`path` (a tree this run made) is removed by `cleanup` if its maker could not."""
    _scratch[path] = None
    try:
        yield path
    finally:
        _scratch.pop(path, None)


def scratch_dirs() -> list[Path]:
    return list(_scratch)


class _Pool(ProcessPoolExecutor):
    """A process pool whose workers are registered as they are spawned (CPython's
    `_spawn_process`, 3.9 on; were it gone, `stop_children`'s sweep still finds them)."""

    what = "worker"

    def _spawn_process(self) -> None:
        super()._spawn_process()
        for pid in self._processes:
            if pid not in _children:
                register(pid, self.what)


@contextmanager
def process_pool(workers: int, what: str) -> Iterator[ProcessPoolExecutor]:
    """A spawn-context pool of `workers` processes ignoring SIGINT (the run's handler
    stops them) and knowing the run's secrets (their excerpts are masked too), each
    registered while the pool lives. The secrets travel through the pool's pipe only."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded pytest process
    pool = _Pool(workers, ctx, _init_worker, (scrub.known(),))
    pool.what = what
    try:
        with pool:
            yield pool
    finally:
        for pid in [c.pid for c in children() if c.what == what]:
            forget(pid)


def _init_worker(secrets: tuple[str, ...]) -> None:
    """In a worker: Ctrl-C reaches the whole terminal's group (the parent stops us);
    mask what the parent masks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    scrub.learn(secrets)


def interrupted() -> str:
    """The signal that interrupted the run ("SIGTERM"), or ""."""
    return _state["signal"]


def install(on_signal: Callable[[str], None] | None = None) -> None:
    """Handle SIGTERM and SIGINT for this run (main thread only)."""
    _state["signal"] = ""
    for sig in SIGNALS:
        _previous[sig] = signal.signal(sig, _handler(on_signal))


def uninstall() -> None:
    for sig, previous in list(_previous.items()):
        with suppress(ValueError, TypeError):
            signal.signal(sig, previous)
        del _previous[sig]


def _handler(on_signal: Callable[[str], None] | None):
    def handle(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        first = not _state["signal"]
        if first:
            _state["signal"] = name
        stop_children()
        if first:
            if on_signal is not None:
                on_signal(name)
            raise Interrupted(f"interrupted ({name})")

    return handle


def stop_children(grace_s: float = GRACE_S) -> list[str]:
    """Stop every registered child, then every other descendant: SIGTERM, and SIGKILL
    for what is still alive after `grace_s`. Returns what was stopped."""
    for hook in list(_stop_hooks.values()):
        with suppress(Exception):
            hook()
    targets = [*children(), *_others()]
    for child in targets:
        _send(child, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(c.pid) for c in targets):
        time.sleep(0.05)
    for child in targets:
        if _alive(child.pid) or child.group:
            _send(child, signal.SIGKILL)
    for child in targets:
        forget(child.pid)
    return [f"{c.what} (pid {c.pid})" for c in targets]


def _others() -> list[Child]:
    """Descendants of this process nobody registered (a registration's narrow gap)."""
    known = set(_children)
    try:
        found = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    return [Child(p.pid, "child", False) for p in found if p.pid not in known]


def _send(child: Child, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        if child.group:
            os.killpg(child.pid, sig)
        else:
            os.kill(child.pid, sig)


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its Popen, is not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def remove_scratch() -> list[str]:
    """Remove every registered scratch tree; returns the ones that could not be removed."""
    problems = []
    for path in scratch_dirs():
        try:
            remove_tree(path)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
        _scratch.pop(path, None)
    return problems


def remove_tree(path: Path) -> None:
    """Remove a tree whatever modes its members came with; a missing one is fine."""

    def unlock(func, p, exc_info) -> None:
        if isinstance(exc_info[1], FileNotFoundError):
            return
        os.chmod(p, 0o700)
        func(p)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=unlock)


def cleanup() -> list[str]:
    """At the run's end: stop what still runs, remove what scratch is left; returns
    what could not be removed."""
    if _children or _state["signal"]:
        stop_children()
    return remove_scratch()
