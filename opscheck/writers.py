"""Writing the report triple so that one writer's failure (a full disk) is not the others'.

The JSON is written first and atomically (a temp file renamed over the reserved one);
if even that fails, a short note is written over the reserved file in place (its page
is already allocated, so this usually fits on a full file system). pytest-html's and
junitxml's session-end writers are wrapped: a failure becomes a line saying what could
not be written (their partial file removed) instead of aborting the hooks after it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from _pytest.junitxml import xml_key


def write_atomic(path: Path, text: str) -> None:
    """`text` into `path` via a temp file beside it and a rename; no temp file is left."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, doc: dict[str, Any], fallback: dict[str, Any]) -> str:
    """Write `doc`; on failure write `fallback` in place, with what went wrong added to its
    "unwritten" list. Returns "" or what went wrong."""
    try:
        write_atomic(path, json.dumps(doc, ensure_ascii=False, indent=1))
        return ""
    except OSError as exc:
        problem = f"JSON report {path}: not written: {exc.strerror or exc}"
    unwritten = [*fallback.get("unwritten", []), problem]
    note = json.dumps({**fallback, "unwritten": unwritten}, ensure_ascii=False).encode()
    try:
        with open(path, "r+b") as f:
            f.write(note)
            f.truncate(len(note))
    except OSError:
        pass  # the reason is returned, to be said on stderr
    return problem


class Guard:
    """Wraps the HTML and XML writers of one run; `problems` lists what failed."""

    def __init__(self, html: Path, xml: Path):
        self.paths = {"HTML": html, "XML": xml}
        self.problems: list[str] = []
        self.failed: set[str] = set()

    def install(self, config: pytest.Config) -> None:
        """Wrap the writers' session-end hooks (and their "generated ..." summary lines)."""
        writers = {id(p): what for p, what in _writers(config)}
        for impl in config.hook.pytest_sessionfinish.get_hookimpls():
            what = writers.get(id(impl.plugin))
            if what:
                impl.function = self._guarded(impl.function, what)
        for impl in config.hook.pytest_terminal_summary.get_hookimpls():
            what = writers.get(id(impl.plugin))
            if what:
                impl.function = self._unless_failed(impl.function, what)

    def _guarded(self, function: Callable[..., Any], what: str) -> Callable[..., Any]:
        def write(*args: Any) -> Any:
            try:
                return function(*args)
            except Exception as exc:  # any writer's failure: said, and the others go on
                self.fail(what, exc)
                return None

        return write

    def _unless_failed(self, function: Callable[..., Any], what: str) -> Callable[..., Any]:
        def summary(*args: Any) -> Any:
            return None if what in self.failed else function(*args)

        return summary

    def fail(self, what: str, exc: BaseException) -> None:
        path = self.paths[what]
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        self.failed.add(what)
        self.problems.append(f"{what} report {path}: not written: {reason}")
        with suppress(OSError):
            path.unlink(missing_ok=True)  # a cut-short file is no report


def _writers(config: pytest.Config) -> list[tuple[object, str]]:
    found: list[tuple[object, str]] = []
    xml = config.stash.get(xml_key, None)
    if xml is not None:
        found.append((xml, "XML"))
    for plugin in config.pluginmanager.get_plugins():
        if type(plugin).__module__.startswith("pytest_html."):
            found.append((plugin, "HTML"))
    return found


def say(lines: list[str]) -> None:
    """Problems on stderr, one line each, whatever pytest does with its terminal."""
    for line in lines:
        print(f"opscheck: {line}", file=sys.stderr, flush=True)
