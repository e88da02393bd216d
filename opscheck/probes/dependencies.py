"""The service's pinned dependencies and the advisories that name them.

Two ways to look pins up, each saying exactly which pins it could not look up:

- `pip_audit()` runs the real pip-audit with JSON output over the `==` pins only
  (`--no-deps --disable-pip`: nothing is installed or resolved). pip-audit marks a pin it
  could not look up (offline, a mirror without the JSON API, a 404) as a skipped
  dependency, prints "No known vulnerabilities found" and exits 0: here every such pin is
  `not_audited`, never clean.
- `osv_mirror()` matches the pins against a local OSV mirror (a folder of OSV JSON
  records, as the OSV bulk export for PyPI unpacks, or that export's `all.zip`): the
  `affected[].ranges` of type ECOSYSTEM (introduced / fixed / last_affected / limit
  events, PEP 440 order) and `affected[].versions`. A record is parsed only when one of
  the `"name"` fields in its raw bytes names a pin: 20,000 records take well under a
  second (benchmarks/test_osv_match.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from opscheck.probes import ProbeError, noatime
from opscheck.scrub import scrub


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503) name
    version: str
    line: int


@dataclass(frozen=True)
class Unpinned:
    """A requirement line that names no exact version, so no advisory can be matched."""

    text: str
    line: int
    why: str


@dataclass
class Pins:
    path: Path
    pins: list[Pin] = field(default_factory=list)
    unpinned: list[Unpinned] = field(default_factory=list)

    def get(self, name: str) -> Pin | None:
        key = canonicalize_name(name)
        return next((p for p in self.pins if p.name == key), None)


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fixed: tuple[str, ...]  # versions that fix it ("" when none is known)

    def names(self) -> set[str]:
        return {self.id, *self.aliases}

    def text(self) -> str:
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fix = f", fixed in {', '.join(self.fixed)}" if self.fixed else ", no fixed version yet"
        return f"{self.package} {self.version}: {self.id}{also}{fix}"


@dataclass
class Audit:
    """What a lookup found: advisories per pin, and the pins it could not look up (why)."""

    source: str
    audited: list[Pin] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    not_audited: dict[str, str] = field(default_factory=dict)  # "name version" or line -> why


# ---- requirements ------------------------------------------------------------------------

_OPTION = re.compile(r"^-{1,2}[a-z]")
_HASH = re.compile(r"\s--hash[=\s]\S+")


def read_pins(path: str | Path, _seen: frozenset[Path] = frozenset()) -> Pins:
    """The `==` pins of a requirements file (and of files it includes with `-r`)."""
    path = Path(path)
    try:
        text = noatime.read_text(path)
    except FileNotFoundError:
        raise ProbeError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProbeError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    out = Pins(path)
    for number, line in _logical_lines(text):
        _read_line(out, path, number, line, _seen | {path.resolve()})
    return out


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) with comments dropped and `\\` continuations joined."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            yield start, full


def _read_line(out: Pins, path: Path, number: int, line: str, seen: frozenset[Path]) -> None:
    if line.startswith(("-r ", "--requirement")):
        target = (path.parent / line.split(maxsplit=1)[-1].lstrip("=")).resolve()
        if target in seen:
            return
        sub = read_pins(target, seen)
        out.pins += sub.pins
        out.unpinned += sub.unpinned
        return
    if line.startswith(("-e ", "--editable")):
        out.unpinned.append(Unpinned(line, number, "an editable install has no version"))
        return
    if _OPTION.match(line):
        return  # --index-url, -c, --hash lines ...: not requirements
    text = _HASH.sub("", line).strip()
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        out.unpinned.append(Unpinned(text, number, f"not a requirement ({exc})"))
        return
    specs = list(req.specifier)
    exact = [s for s in specs if s.operator in ("==", "===") and "*" not in s.version]
    if req.url or len(specs) != 1 or not exact:
        why = "a URL requirement" if req.url else "not pinned with =="
        out.unpinned.append(Unpinned(text, number, why))
        return
    out.pins.append(Pin(canonicalize_name(req.name), exact[0].version, number))


# ---- pip-audit ---------------------------------------------------------------------------


def pip_audit(
    pins: Pins,
    service: str = "pypi",
    osv_url: str = "",
    timeout_s: float = 15,
    scratch: str | Path | None = None,
) -> Audit:
    """Run real pip-audit over the `==` pins; every pin it skipped is `not_audited`."""
    audit = Audit(f"pip-audit ({service})")
    if not pins.pins:
        return audit
    with tempfile.TemporaryDirectory(dir=scratch or None) as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("".join(f"{p.name}=={p.version}\n" for p in pins.pins))
        cmd = [sys.executable, "-m", "pip_audit", "-r", str(req), "--no-deps", "--disable-pip"]
        cmd += ["-f", "json", "--progress-spinner", "off", "--timeout", f"{timeout_s:g}"]
        cmd += ["-s", service, "--cache-dir", str(Path(tmp) / "cache")]
        if osv_url:
            cmd += ["--osv-url", osv_url]
        limit = 60 + timeout_s * 2 * len(pins.pins)
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise ProbeError(f"pip-audit did not finish within {limit:g} s") from None
    doc = _audit_json(proc.stdout)
    if doc is None:
        raise ProbeError(f"pip-audit exited {proc.returncode} without a report: {_tail(proc)}")
    _read_audit(audit, pins, doc)
    return audit


def _audit_json(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                return None
            return doc if isinstance(doc, dict) else None
    return None


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    return scrub(lines[-1].strip()[:300]) if lines else "no output"


def _read_audit(audit: Audit, pins: Pins, doc: dict) -> None:
    seen = set()
    for dep in doc.get("dependencies", []):
        name = canonicalize_name(str(dep.get("name", "")))
        pin = pins.get(name)
        seen.add(name)
        if pin is None:
            continue
        if "skip_reason" in dep or "version" not in dep:
            audit.not_audited[f"{pin.name} {pin.version}"] = str(
                dep.get("skip_reason") or "pip-audit gave no version for it"
            )
            continue
        audit.audited.append(pin)
        for v in dep.get("vulns", []):
            audit.findings.append(
                Finding(
                    pin.name,
                    pin.version,
                    str(v.get("id")),
                    tuple(v.get("aliases") or ()),
                    tuple(v.get("fix_versions") or ()),
                )
            )
    for pin in pins.pins:
        if pin.name not in seen:
            audit.not_audited[f"{pin.name} {pin.version}"] = "absent from pip-audit's report"


# ---- local OSV mirror --------------------------------------------------------------------


def osv_mirror(pins: Pins, mirror: str | Path) -> Audit:
    """Match the pins against a local OSV mirror (folder of records or the export's zip)."""
    mirror = Path(mirror)
    audit = Audit(f"OSV mirror {mirror}")
    if not pins.pins:
        return audit
    wanted = {p.name for p in pins.pins}
    records = 0
    for raw in _raw_records(mirror):
        records += 1
        if not _names_in(raw) & wanted:
            continue
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict):
            _match_record(audit, pins, doc, wanted)
    if records == 0:
        raise ProbeError(f"{mirror}: holds no OSV records (*.json)")
    audit.audited = list(pins.pins)
    audit.findings = _merge_aliases(audit.findings)
    return audit


_NAME_FIELD = re.compile(rb'"name"\s*:\s*"([^"\\]+)"')


def _names_in(raw: bytes) -> set[str]:
    """Canonical names of every `"name": "..."` field in a record's raw bytes: a superset of
    its packages' names, found without parsing the JSON (most records are skipped here)."""
    return {canonicalize_name(m.decode("utf-8", "replace")) for m in _NAME_FIELD.findall(raw)}


def _raw_records(mirror: Path) -> Iterator[bytes]:
    if mirror.is_file() and zipfile.is_zipfile(mirror):
        try:
            with zipfile.ZipFile(mirror) as zf:
                for info in zf.infolist():
                    if info.filename.endswith(".json") and not info.is_dir():
                        yield zf.read(info)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ProbeError(f"{mirror}: cannot read the zip: {exc}") from None
        return
    if not mirror.is_dir():
        raise ProbeError(f"{mirror}: not a folder of OSV records nor a zip of them")
    for path in _json_files(mirror):
        try:
            yield _read(path)
        except OSError as exc:
            raise ProbeError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _json_files(folder: Path) -> Iterator[str]:
    """Every *.json below `folder` (os.scandir: ten times faster than Path.rglob here)."""
    stack = [str(folder)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.name.endswith(".json"):
                    yield e.path


def _read(path: str) -> bytes:
    """A whole file through os.read (half the cost of open().read() for small files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _match_record(audit: Audit, pins: Pins, doc: dict, wanted: set[str]) -> None:
    if doc.get("withdrawn"):
        return
    for affected in doc.get("affected") or ():
        package = affected.get("package") or {}
        if package.get("ecosystem") != "PyPI":
            continue
        name = canonicalize_name(str(package.get("name", "")))
        pin = pins.get(name) if name in wanted else None
        if pin is None:
            continue
        hit, fixed = is_affected(pin.version, affected)
        if hit:
            audit.findings.append(
                Finding(
                    pin.name,
                    pin.version,
                    str(doc.get("id")),
                    tuple(doc.get("aliases") or ()),
                    fixed,
                )
            )


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except (InvalidVersion, TypeError):
        return None


_EVENT_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 1, "limit": 1}


def is_affected(version: str, affected: dict) -> tuple[bool, tuple[str, ...]]:
    """Whether `version` falls in one of the entry's ECOSYSTEM ranges or its versions list,
    and the fixed versions above it (OSV schema's evaluation, PEP 440 order)."""
    v = _version(version)
    listed = affected.get("versions") or ()
    hit = version in listed or (v is not None and v in {_version(x) for x in listed} - {None})
    fixed: list[str] = []
    for rng in affected.get("ranges") or ():
        if rng.get("type") != "ECOSYSTEM" or v is None:
            continue
        in_range, fixes = _in_range(v, rng.get("events") or ())
        hit = hit or in_range
        fixed += [f for f in fixes if f not in fixed]
    return hit, tuple(fixed) if hit else ()


def _in_range(v: Version, events: Iterable[dict]) -> tuple[bool, list[str]]:
    points = []
    for event in events:
        for kind, text in event.items():
            at = Version("0") if kind == "introduced" and text == "0" else _version(str(text))
            if kind in _EVENT_ORDER and at is not None:
                points.append((at, _EVENT_ORDER[kind], kind, str(text)))
    vulnerable = False
    for at, _, kind, _text in sorted(points):
        if kind == "introduced" and v >= at:
            vulnerable = True
        elif (kind in ("fixed", "limit") and v >= at) or (kind == "last_affected" and v > at):
            vulnerable = False
    fixes = [text for at, _, kind, text in sorted(points) if kind == "fixed" and at > v]
    return vulnerable, fixes[:1]


def _merge_aliases(findings: list[Finding]) -> list[Finding]:
    """One finding per vulnerability: a PYSEC and a GHSA record naming each other merge."""
    merged: list[Finding] = []
    for f in findings:
        twin = next(
            (m for m in merged if m.package == f.package and m.names() & f.names()),
            None,
        )
        if twin is None:
            merged.append(f)
            continue
        merged.remove(twin)
        names = sorted((twin.names() | f.names()) - {twin.id})
        fixed = tuple(dict.fromkeys(twin.fixed + f.fixed))
        merged.append(Finding(twin.package, twin.version, twin.id, tuple(names), fixed))
    return merged


def names(line: str, package: str) -> bool:
    """Whether a requirement line is about `package` (any spelling of its name)."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return bool(m) and canonicalize_name(m.group(1)) == canonicalize_name(package)
