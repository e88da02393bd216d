"""The audit archive: every report triple listed in a hash-chained manifest.

`<reports.dir>/manifest.jsonl` holds one JSON object a line, one per run: the run's
label and stamp, each of its files (path relative to the reports dir, SHA-256, bytes),
the previous entry's hash and its own hash (SHA-256 of the entry's canonical JSON
without `hash`). Altering, removing or reordering a report or an entry breaks the chain
or a file's hash; a report the manifest does not list is named too. The manifest is
rewritten whole (a temp file renamed over it) under an flock on `.manifest.lock`, so
runs of different labels append safely and a full disk leaves the old manifest intact.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from opscheck import archivesig, writers

MANIFEST = "manifest.jsonl"
LOCK = ".manifest.lock"
GENESIS = "0" * 64
VERSION = 1
LOCK_WAIT_S = 60.0


class ArchiveError(Exception):
    """The manifest could not be read, locked or written; the text is one line."""


class Unsigned(ArchiveError):
    """The entry was appended, but the new head could not be signed."""


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON without its own `hash`."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def run_files(stem: Path) -> list[Path]:
    """A run's files: `<stem>.{html,xml,json}` and attachments `<stem>-<tag>.*` (a tag
    never starts with a digit: `<stem>-2` is another run of the same second)."""
    found = []
    for path in sorted(stem.parent.iterdir()):
        name = path.name
        if not path.is_file() or name.startswith("."):
            continue
        rest = name[len(stem.name) :] if name.startswith(stem.name) else None
        if rest is None:
            continue
        if (rest.startswith(".") and "." not in rest[1:]) or (
            rest.startswith("-") and rest[1:2] and not rest[1].isdigit()
        ):
            found.append(path)
    return found


@contextmanager
def locked(reports: Path) -> Iterator[None]:
    """Hold the manifest's lock (waiting up to LOCK_WAIT_S for another run's append)."""
    try:
        fd = os.open(reports / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ArchiveError(f"cannot open {reports / LOCK}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ArchiveError(
                        f"{reports / LOCK} stayed locked for {LOCK_WAIT_S:.0f} s"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def read_lines(manifest: Path) -> list[str]:
    try:
        data = manifest.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ArchiveError(f"cannot read {manifest}: {exc.strerror or exc}") from None
    return data.decode("utf-8", errors="replace").splitlines(keepends=True)


def _last_hash(lines: list[str]) -> tuple[int, str]:
    """The next sequence number and the hash to chain to (the last entry's)."""
    if not lines:
        return 0, GENESIS
    try:
        last = json.loads(lines[-1])
        return int(last["seq"]) + 1, str(last["hash"])
    except (ValueError, KeyError, TypeError):
        raise ArchiveError(
            f"{MANIFEST} line {len(lines)} is not a manifest entry; not appending "
            "(run `python3 -m opscheck archive verify`)"
        ) from None


def append(
    reports: Path, stem: Path, label: str, started: str, key: str = "", adopted: bool = False
) -> dict[str, Any]:
    """Add the run at `stem` to the manifest (and sign the new head with `key`, a PEM
    file, when set); raises ArchiveError, Unsigned or OSError on failure."""
    files = []
    for path in run_files(stem):
        files.append(
            {
                "path": path.relative_to(reports).as_posix(),
                "sha256": file_sha256(path),
                "bytes": path.stat().st_size,
            }
        )
    with locked(reports):
        manifest = reports / MANIFEST
        lines = read_lines(manifest)
        seq, prev = _last_hash(lines)
        entry: dict[str, Any] = {
            "v": VERSION,
            "seq": seq,
            "prev": prev,
            "label": label,
            "stamp": stem.name,
            "started": started,
            "recorded": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": files,
            **({"adopted": True} if adopted else {}),
        }
        entry["hash"] = entry_hash(entry)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        writers.write_atomic(manifest, "".join(lines) + canonical(entry).decode() + "\n")
        if key:
            try:
                archivesig.sign(reports, entry, key)
            except (archivesig.SignatureError, OSError) as exc:
                why = str(exc) if isinstance(exc, archivesig.SignatureError) else exc.strerror
                raise Unsigned(why) from None
    return entry


def record(reports: Path, stem: Path, label: str, started: str, key: str = "") -> str:
    """`append`, never raising: returns "" or the one-line reason the run is not archived."""
    try:
        append(reports, stem, label, started, key)
        return ""
    except Unsigned as exc:
        return f"archive {reports / MANIFEST}: run {stem.name} recorded, but not signed: {exc}"
    except ArchiveError as exc:
        problem = str(exc)
    except OSError as exc:
        problem = f"{exc.strerror or exc}"
    return f"archive {reports / MANIFEST}: run {stem.name} not recorded: {problem}"


@dataclass
class Verdict:
    """What `verify` found: problems in manifest order (the first is the first break)."""

    entries: list[dict[str, Any]] = field(default_factory=list)  # the entries that verified
    problems: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    in_progress: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(reports: Path, public_key: str = "") -> Verdict:
    """Check every entry's chain link and hash, every listed file's hash, that no report
    in the label folders is unlisted (a run in progress excepted) and, with `public_key`
    (a PEM file), the signature of the head; a bad key raises SignatureError."""
    verdict = Verdict()
    manifest = reports / MANIFEST
    lines = read_lines(manifest)
    prev, listed, last = GENESIS, set(), None
    for n, line in enumerate(lines, 1):
        entry, problem = _check_entry(line, n, prev)
        if entry is None:
            verdict.problems.append(problem)
            break  # the chain after a broken link cannot be trusted
        prev, last = entry["hash"], entry
        listed.update(f["path"] for f in entry["files"])
        file_problems = _check_files(reports, entry, n, verdict)
        if problem or file_problems:
            verdict.problems += [p for p in [problem, *file_problems] if p]
        else:
            verdict.entries.append(entry)
    else:
        if public_key:
            problem = archivesig.check(reports, last, public_key)
            verdict.problems += [problem] if problem else []
    verdict.problems += _unlisted(reports, listed, verdict)
    return verdict


def _where(n: int, entry: dict[str, Any] | None) -> str:
    name = ""
    if entry:
        files = entry.get("files") or []
        name = files[0]["path"] if files else entry.get("stamp", "")
    return f"{MANIFEST} line {n}" + (f" ({name})" if name else "")


def _check_entry(line: str, n: int, prev: str) -> tuple[dict[str, Any] | None, str]:
    """The parsed entry and "" or a problem; None when the chain breaks here."""
    try:
        entry = json.loads(line)
        files = entry["files"]
        ok = all(isinstance(f["path"], str) and isinstance(f["sha256"], str) for f in files)
        if not isinstance(entry["hash"], str) or not ok:
            raise TypeError
    except (ValueError, KeyError, TypeError):
        cut = "" if line.endswith("\n") else " (cut short: the manifest was truncated)"
        return None, f"{_where(n, None)}: not a manifest entry{cut}"
    if entry_hash(entry) != entry["hash"]:
        return None, f"{_where(n, entry)}: the entry was altered (its hash does not match)"
    if entry.get("prev") != prev:
        return None, (
            f"{_where(n, entry)}: does not follow the entry before it (entries removed, "
            "reordered or inserted)"
        )
    if entry.get("seq") != n - 1:
        return None, f"{_where(n, entry)}: sequence {entry.get('seq')}, expected {n - 1}"
    return entry, ""


def _check_files(reports: Path, entry: dict[str, Any], n: int, verdict: Verdict) -> list[str]:
    problems = []
    for f in entry["files"]:
        path = reports / f["path"]
        try:
            digest = file_sha256(path)
        except FileNotFoundError:
            problems.append(f"{f['path']}: missing (listed in {MANIFEST} line {n})")
            continue
        except OSError as exc:
            problems.append(f"{f['path']}: cannot be read: {exc.strerror or exc}")
            continue
        verdict.files += 1
        verdict.bytes += f.get("bytes", 0)
        if digest != f["sha256"]:
            problems.append(f"{f['path']}: altered (its SHA-256 differs from {MANIFEST} line {n})")
    return problems


def _unlisted(reports: Path, listed: set[str], verdict: Verdict) -> list[str]:
    problems = []
    if not reports.is_dir():
        return problems
    for folder in sorted(p for p in reports.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue
        busy = run_in_progress(folder)
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            rel = path.relative_to(reports).as_posix()
            if rel in listed:
                continue
            if busy and _is_running(path):
                verdict.in_progress.append(rel)
                continue
            verdict.unlisted.append(rel)
            problems.append(f"{rel}: not listed in {MANIFEST} (added, or its run's append failed)")
    return problems


def run_in_progress(folder: Path) -> bool:
    """True when a run of this label holds its run lock (`opscheck.runlock`) now."""
    lock = folder / ".lock"
    if not lock.exists():
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _is_running(path: Path) -> bool:
    """A run's files while it runs: its reserved JSON still says "running", or the HTML
    and XML of that run being written."""
    js = path.with_suffix(".json") if path.suffix != ".json" else path
    try:
        return json.loads(js.read_text()).get("status") == "running"
    except (OSError, ValueError, AttributeError):
        return False


def archive_run(state: Any) -> None:
    """At the run's very end (reports finished and scrubbed): add them to the manifest.
    A failure is said on stderr and in the JSON's `unwritten` list; the run goes on."""
    from opscheck import scrub

    stem = state.paths.stem
    key = state.loaded.config.reports.archive_key
    problem = record(stem.parent.parent, stem, state.label, state.doc.get("started", ""), key)
    if not problem:
        return
    writers.say([problem])
    if state.doc:
        state.doc["unwritten"] = [*state.doc.get("unwritten", []), problem]
        state._write_json()
        scrub.scrub_file(state.paths.json)


def reports_dir(conf_reports_dir: str, root: Path) -> Path:
    """`reports.dir`, relative paths taken from the suite's rootdir."""
    path = Path(conf_reports_dir).expanduser()
    return path if path.is_absolute() else root / path


def verify_command(reports: Path, public_key: str = "") -> int:
    """`archive verify`: one line per problem, the first break first; 0 intact, 1 not."""
    try:
        verdict = verify(reports, public_key)
    except (ArchiveError, archivesig.SignatureError) as exc:
        print(f"archive {reports}: {exc}", file=sys.stderr)
        return 1
    for problem in verdict.problems:
        print(problem)
    for rel in verdict.in_progress:
        print(f"{rel}: run in progress, not archived yet")
    counts = f"{len(verdict.entries)} entries intact, {verdict.files} files checked"
    if verdict.intact:
        print(f"archive {reports / MANIFEST}: intact ({counts})")
        return 0
    print(f"archive {reports / MANIFEST}: BROKEN, first at: {verdict.problems[0]} ({counts})")
    return 1


def is_daily(label: str) -> bool:
    """A run of the daily list: its label's marker expression names `daily`, not negated."""
    tokens = label.split("-")
    return "daily" in tokens and "not" not in tokens


def run_day(entry: dict[str, Any], zone: Any) -> date | None:
    """The calendar day (in `zone`) a run started, from its stamp."""
    try:
        started = datetime.strptime(str(entry.get("stamp", ""))[:16], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return started.replace(tzinfo=UTC).astimezone(zone).date()


def quarter_so_far(today: date) -> tuple[date, date]:
    """The quarter holding yesterday, from its first day through yesterday (on the first
    day of a quarter: the whole quarter before)."""
    last = today - timedelta(days=1)
    first = date(last.year, 3 * ((last.month - 1) // 3) + 1, 1)
    return first, last


def days_without_daily(
    entries: list[dict[str, Any]], first: date, last: date, zone: Any
) -> list[date]:
    """The days from `first` through `last` with no intact daily report."""
    have = {run_day(e, zone) for e in entries if is_daily(str(e.get("label", "")))}
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [d for d in days if d not in have]


_STEM = re.compile(r"^(\d{8}T\d{6}Z(?:-\d+)?)[.-]")


def adopt(reports: Path, key: str = "") -> tuple[list[str], str]:
    """Add the runs no entry lists (reports from before the archive, or whose append
    failed) to the manifest, marked `adopted`; refused ("" adopted, the reason) while the
    archive has any other problem. Returns the stems adopted and a refusal or ""."""
    verdict = verify(reports)
    others = [p for p in verdict.problems if not p.endswith("(added, or its run's append failed)")]
    if others:
        return [], f"the archive is broken; adopt nothing until it is explained: {others[0]}"
    stems: dict[Path, str] = {}
    for rel in verdict.unlisted:
        path = reports / rel
        m = _STEM.match(path.name)
        if m:
            stems.setdefault(path.parent / m.group(1), path.parent.name)
    for stem, label in sorted(stems.items(), key=lambda kv: kv[0].name):
        append(reports, stem, label, "", key, adopted=True)
    return [s.relative_to(reports).as_posix() for s in sorted(stems, key=lambda s: s.name)], ""


def adopt_command(reports: Path, key: str) -> int:
    """`archive adopt`: 0 when the unlisted runs were added (each named), 1 when refused."""
    try:
        adopted, refused = adopt(reports, key)
    except (ArchiveError, OSError) as exc:
        print(f"archive {reports}: nothing more adopted: {exc}", file=sys.stderr)
        return 1
    if refused:
        print(f"archive {reports / MANIFEST}: {refused}", file=sys.stderr)
        return 1
    for stem in adopted:
        print(f"adopted {stem}")
    print(f"archive {reports / MANIFEST}: {len(adopted)} runs adopted")
    return 0
