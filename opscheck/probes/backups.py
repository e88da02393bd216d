"""The backup directory as the guide's script leaves it: sets of four files per night.

`<kind>_YYYYmmdd_HHMMSS.<ext>` with kinds chroma_db, config, logs (`.tar.gz`) and
template_data (`.json`); all four files of one run share the run's stamp, written in
the server's local time (`service.timezone`). This module lists and groups them and
reports ages; reading their contents is `archives.py`'s job.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from opscheck.probes import ProbeError

KINDS = ("chroma_db", "template_data", "config", "logs")
SUFFIX = {"chroma_db": ".tar.gz", "template_data": ".json", "config": ".tar.gz", "logs": ".tar.gz"}
NAME = re.compile(r"^(chroma_db|template_data|config|logs)_(\d{8}_\d{6})(\.tar\.gz|\.json)$")


@dataclass(frozen=True)
class BackupFile:
    path: Path
    kind: str
    stamp: datetime  # when the run started, from the name (aware)
    size: int  # bytes
    mtime: datetime  # aware

    def age_hours(self, now: datetime) -> float:
        return (now - self.stamp).total_seconds() / 3600.0

    @property
    def stamp_text(self) -> str:
        return self.path.name[len(self.kind) + 1 : len(self.kind) + 16]


@dataclass
class BackupSet:
    """The files of one backup run (one stamp)."""

    stamp: datetime
    files: dict[str, BackupFile] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [k for k in KINDS if k not in self.files]

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())

    @property
    def label(self) -> str:
        return next(iter(self.files.values())).stamp_text if self.files else "?"


@dataclass
class Inventory:
    directory: Path
    files: list[BackupFile]
    strays: list[str]  # entries that are not `<kind>_<stamp>.<ext>`, with why

    def newest(self, kind: str) -> BackupFile | None:
        found = [f for f in self.files if f.kind == kind]
        return max(found, key=lambda f: f.stamp) if found else None

    def previous(self, f: BackupFile) -> BackupFile | None:
        """The same kind's file of the run before `f` (the night before, when it ran)."""
        found = [g for g in self.files if g.kind == f.kind and g.stamp < f.stamp]
        return max(found, key=lambda g: g.stamp) if found else None

    def sets(self) -> list[BackupSet]:
        """All runs, oldest first."""
        runs: dict[datetime, BackupSet] = {}
        for f in self.files:
            runs.setdefault(f.stamp, BackupSet(f.stamp)).files[f.kind] = f
        return [runs[k] for k in sorted(runs)]

    def sets_since(self, since: datetime) -> list[BackupSet]:
        return [s for s in self.sets() if s.stamp >= since]


def kind_of(name: str) -> str:
    """The kind a backup file's name says it is; "" for another name."""
    m = NAME.match(name)
    return m.group(1) if m else ""


def zone(name: str) -> tzinfo | None:
    """The zone the service stamps times in; None: this machine's local time."""
    if not name:
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def localize(naive: datetime, tz: tzinfo | None) -> datetime:
    """A wall-clock time of the server made aware (DST-correct for named zones)."""
    return naive.astimezone() if tz is None else naive.replace(tzinfo=tz)


def now() -> datetime:
    return datetime.now(UTC)


def scan(directory: str, tz: tzinfo | None) -> Inventory:
    """List the backup directory; a missing or unreadable one is a ProbeError."""
    root = Path(directory)
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        raise ProbeError(f"backup dir {root} does not exist") from None
    except NotADirectoryError:
        raise ProbeError(f"backup dir {root} is not a directory") from None
    except PermissionError:
        raise ProbeError(f"backup dir {root}: permission denied") from None
    except OSError as exc:
        raise ProbeError(f"backup dir {root}: {exc.strerror or exc}") from None
    files, strays = [], []
    for entry in sorted(entries, key=lambda e: e.name):
        parsed = _parse(entry, tz)
        if isinstance(parsed, str):
            strays.append(parsed)
        else:
            files.append(parsed)
    return Inventory(root, files, strays)


@dataclass(frozen=True)
class Listed:
    """A directory entry as another host lists it (`ls`-like: name, size, mtime, kind)."""

    name: str
    size: int
    mtime: float  # seconds since the epoch
    is_file: bool


def scan_listing(directory: str, listing: list[Listed], tz: tzinfo | None) -> Inventory:
    """The inventory of a backup directory listed on another host (same naming rules)."""
    files, strays = [], []
    for entry in sorted(listing, key=lambda e: e.name):
        named = _parse_name(entry.name, tz)
        if isinstance(named, str):
            strays.append(named)
        elif not entry.is_file:
            strays.append(f"{entry.name}: not a regular file")
        else:
            mtime = datetime.fromtimestamp(entry.mtime, UTC)
            files.append(BackupFile(Path(directory) / entry.name, *named, entry.size, mtime))
    return Inventory(Path(directory), files, strays)


def scan_on(host, directory: str, tz: tzinfo | None) -> Inventory:
    """The backup directory on `host`: scanned here, listed there (a host with `list_dir`)."""
    lister = getattr(host, "list_dir", None)
    return scan(directory, tz) if lister is None else scan_listing(directory, lister(directory), tz)


def _parse_name(name: str, tz: tzinfo | None) -> tuple[str, datetime] | str:
    """(kind, stamp) from a backup file's name, or why it is not one."""
    m = NAME.match(name)
    if not m:
        return f"{name}: not named <kind>_YYYYmmdd_HHMMSS.<ext>"
    kind, stamp, ext = m.groups()
    if ext != SUFFIX[kind]:
        return f"{name}: a {kind} backup should end in {SUFFIX[kind]}"
    try:
        return kind, localize(datetime.strptime(stamp, "%Y%m%d_%H%M%S"), tz)
    except ValueError:
        return f"{name}: {stamp} is not a valid date and time"


def _parse(entry: os.DirEntry, tz: tzinfo | None) -> BackupFile | str:
    named = _parse_name(entry.name, tz)
    if isinstance(named, str):
        return named
    kind, when = named
    try:
        st = entry.stat()
    except OSError as exc:
        return f"{entry.name}: {exc.strerror}"
    if not entry.is_file():
        return f"{entry.name}: not a regular file"
    mtime = datetime.fromtimestamp(st.st_mtime, UTC)
    return BackupFile(Path(entry.path), kind, when, st.st_size, mtime)


def day_windows(end: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """`days` consecutive 24-hour windows ending at `end`, newest first."""
    return [(end - timedelta(days=n + 1), end - timedelta(days=n)) for n in range(days)]


def anomalies(f: BackupFile, now: datetime) -> list[str]:
    """Why a file's age cannot be trusted: a stamp ahead of now, or an mtime far from it."""
    problems = []
    if f.stamp > now + timedelta(minutes=5):
        ahead = (f.stamp - now).total_seconds() / 3600
        problems.append(f"stamp is {ahead:.1f} h in the future (clock or time zone wrong?)")
    drift = (f.mtime - f.stamp).total_seconds() / 3600
    if abs(drift) > 1:
        problems.append(
            f"modified {drift:+.1f} h from its stamp, limit 1 h (copied, touched or misnamed?)"
        )
    return problems


def shrunk(sets: list[BackupSet], since: datetime) -> list[tuple[str, BackupFile, BackupFile]]:
    """Files of sets since `since` under half the size of the same kind in the set before."""
    found = []
    for before, after in itertools.pairwise(sets):
        if after.stamp < since:
            continue
        for kind, f in after.files.items():
            prev = before.files.get(kind)
            if prev is not None and f.size * 2 < prev.size:
                found.append((kind, prev, f))
    return found


def when(t: datetime) -> str:
    """A time as the operators read it: local wall clock with its zone."""
    return t.astimezone().strftime("%Y-%m-%d %H:%M %Z")
