"""Pending security updates on a Debian or Ubuntu host, from a simulated upgrade.

`apt-get -s dist-upgrade` needs no root and changes nothing: it prints one line per
package it would install, `Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2
Debian-Security:12/stable-security [amd64])`, the parenthesis naming the candidate's
version and the releases (`Label:Version/Suite`) that carry it. A package is a security
update when one of those releases is a security one (its label or suite says
"security"): Debian's `Debian-Security:12/stable-security`, Ubuntu's
`Ubuntu:22.04/jammy-security`. dist-upgrade, not upgrade: a security fix that needs a new
dependency is "kept back" by `upgrade` and would be missed.

How long an update has been pending is at least the age of the package list it came in:
the candidate was published no later than that release's `Date:` (its
`/var/lib/apt/lists/*Release` file). That date is a lower bound and never overstates:
a list refreshed every day says one day even when the fix came out in March, so the
suite also keeps the first day it saw each (package, candidate) pending
(`first_seen`), and the age is the larger of the two.

`apt_config` (the `[packages] apt_config` key) names an apt.conf read as `APT_CONFIG`:
apt's own way to point it at other state, lists, sources and dpkg status (the tests use
a private repository and state this way; the host's apt state is never touched).

On a remote host (`simulate_host`) the same apt-get, apt-config and Release files are read
there in one command, each part fenced with its exit code; the same parser reads them.
There every `Inst` line must parse and apt's summary line must be there: output that is
cut short or not apt's fails, never reads as "nothing pending".
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from opscheck.probes import ProbeError
from opscheck.probes.host import LocalHost
from opscheck.probes.remote import _C as LC_C
from opscheck.writers import write_atomic


class Unsupported(Exception):
    """This host's package tool is not one the probe reads; the text says which."""


@dataclass(frozen=True)
class Release:
    """One package list's release: who publishes it, which suite, and when."""

    file: str
    origin: str
    label: str
    suite: str
    codename: str
    date: datetime | None

    @property
    def security(self) -> bool:
        return _is_security(f"{self.origin} {self.label} {self.suite} {self.codename}")


@dataclass(frozen=True)
class Pending:
    package: str
    installed: str
    candidate: str
    releases: tuple[str, ...]  # "Debian-Security:12/stable-security"
    listed_since: datetime | None = None  # the Date of the list that carries it

    @property
    def security(self) -> bool:
        return any(_is_security(r) for r in self.releases)


@dataclass
class Upgrade:
    pending: list[Pending] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)

    @property
    def security(self) -> list[Pending]:
        return [p for p in self.pending if p.security]


_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) (.*?)(?: \[[^\]]*\])?\)")
_SUMMARY = re.compile(r"^\d+ upgraded, \d+ newly installed, ", re.M)
# (no binary cache written: apt run as root would otherwise refresh pkgcache.bin)
SIMULATE = [
    "apt-get",
    "-s",
    "-q",
    "-o",
    "Debug::NoLocking=1",
    "-o",
    "Dir::Cache::pkgcache=",
    "-o",
    "Dir::Cache::srcpkgcache=",
    "dist-upgrade",
]
TIMEOUT_S = 120.0


def _is_security(text: str) -> bool:
    return "security" in text.lower()


def _env(apt_config: str) -> dict[str, str]:
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    if apt_config:
        env["APT_CONFIG"] = apt_config
    return env


def simulate(apt_config: str = "", timeout_s: float = TIMEOUT_S) -> Upgrade:
    """The packages a dist-upgrade would install now, with the releases they come from."""
    if shutil.which("apt-get") is None:
        raise Unsupported("no apt-get on this host (only Debian and Ubuntu are supported)")
    if apt_config and not Path(apt_config).is_file():
        raise ProbeError(f"[packages] apt_config {apt_config}: no such file")
    try:
        proc = subprocess.run(
            SIMULATE,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=_env(apt_config),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"apt-get -s dist-upgrade did not finish within {timeout_s:g} s") from None
    if proc.returncode != 0:
        last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["no output"]
        raise ProbeError(f"apt-get -s dist-upgrade exited {proc.returncode}: {last[0].strip()}")
    releases = read_releases(lists_dir(apt_config))
    return Upgrade(parse_simulation(proc.stdout, releases), releases)


def parse_simulation(text: str, releases: list[Release] = ()) -> list[Pending]:
    """The `Inst` lines of `apt-get -s` output."""
    out = []
    for line in text.splitlines():
        m = _INST.match(line)
        if not m:
            continue
        package, installed, candidate, where = m.groups()
        names = tuple(r.strip() for r in where.split(", ") if r.strip())
        out.append(
            Pending(package, installed or "", candidate, names, _listed_since(names, releases))
        )
    return out


def lists_dir(apt_config: str = "") -> Path:
    """Where apt keeps its package lists under this config (Dir::State::lists)."""
    try:
        proc = subprocess.run(
            ["apt-config", "shell", "LISTS", "Dir::State::lists/d"],
            capture_output=True,
            text=True,
            timeout=30,
            env=_env(apt_config),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError(f"apt-config: {exc}") from None
    m = re.search(r"LISTS='([^']*)'", proc.stdout)
    if proc.returncode != 0 or not m:
        raise ProbeError(f"apt-config could not tell Dir::State::lists: {proc.stderr.strip()}")
    return Path(m.group(1))


def read_releases(folder: Path) -> list[Release]:
    """The `*Release` and `*InRelease` files of apt's lists folder."""
    out = []
    for path in sorted(folder.glob("*Release")):
        if path.name.endswith(".gpg") or not path.is_file():
            continue
        out.append(release_of(path.name, path.read_text(errors="replace")))
    return out


def release_of(name: str, text: str) -> Release:
    """A Release (or InRelease) file's text as a Release."""
    fields = _release_fields(text)
    return Release(
        name,
        fields.get("origin", ""),
        fields.get("label", ""),
        fields.get("suite", ""),
        fields.get("codename", ""),
        _date(fields.get("date", "")),
    )


def _release_fields(text: str) -> dict[str, str]:
    """The paragraph's `Key: value` fields (an InRelease's clear-signed text included)."""
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        text = text.split("\n\n", 1)[-1]
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("-----BEGIN PGP SIGNATURE"):
            break
        key, sep, value = line.partition(":")
        if sep and not line[:1].isspace():
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def _date(text: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _listed_since(names: tuple[str, ...], releases: list[Release]) -> datetime | None:
    """The oldest Date of the lists whose label (or origin) and suite a candidate names."""
    dates = []
    for name in names:
        label, _, rest = name.partition(":")
        suite = rest.partition("/")[2]
        for r in releases:
            if label in (r.label, r.origin) and suite in (r.suite, r.codename) and r.date:
                dates.append(r.date)
    return min(dates) if dates else None


# ---- on a remote host: the same reads, in one command there -----------------------------


def simulate_host(host, apt_config: str = "", timeout_s: float = TIMEOUT_S) -> Upgrade:
    """`simulate` on `host`: this machine as before, another host through its commands."""
    if isinstance(host, LocalHost):
        return simulate(apt_config, timeout_s)
    token = f"@@opscheck-{os.urandom(6).hex()}"
    command = LC_C + simulate_command(apt_config, token)
    rc, out, err = host.run_rc("apt-get -s dist-upgrade", command, host.opts.timeout_s + timeout_s)
    try:
        return parse_host_output(host.name, apt_config, out, token)
    except ValueError as exc:
        why = f"cannot parse ({exc})" if out.strip() or rc == 0 else (err.strip() or f"exit {rc}")
        raise ProbeError(f"host {host.name}: apt-get -s dist-upgrade: {why}") from None


def simulate_command(apt_config: str, token: str) -> str:
    """POSIX sh: apt-get's simulation, apt's lists dir and its Release files, fenced by
    `token` lines, each part with its exit code; nothing written, no lock taken."""
    q, fence = shlex.quote, f"printf '%s %s\\n' {token}"
    lines = ["export LANG=C"]
    if apt_config:
        lines.append(f"APT_CONFIG={q(apt_config)}; export APT_CONFIG")
    lines.append(f"command -v apt-get >/dev/null 2>&1 || {{ {fence} none; exit 0; }}")
    if apt_config:
        lines.append(f'[ -f "$APT_CONFIG" ] || {{ {fence} noconf; exit 0; }}')
    lines += [
        f"{fence} sim",
        f"{' '.join(map(q, SIMULATE))} 2>&1",
        f"printf '\\n%s rc %s\\n' {token} \"$?\"",
        'LISTS=; eval "$(apt-config shell LISTS Dir::State::lists/d 2>/dev/null)"',
        f'{fence} "lists $LISTS"',
        'if [ -n "$LISTS" ]; then for f in "${LISTS%/}"/*Release; do',
        '  [ -f "$f" ] || continue',
        f'  {fence} "release ${{f##*/}}"; cat -- "$f" 2>&1',
        f"  printf '\\n%s rc %s\\n' {token} \"$?\"",
        "done; fi",
        f"{fence} end",
    ]
    return "\n".join(lines)


def _sections(out: str, token: str) -> list[tuple[str, str, str, int | None]]:
    """(kind, argument, text, exit code) of each fenced part, in order."""
    parts: list[list] = []
    for line in out.splitlines():
        if not line.startswith(token + " "):
            if parts:
                parts[-1][2].append(line)
            continue
        kind, _, arg = line[len(token) + 1 :].partition(" ")
        if kind == "rc" and parts and parts[-1][3] is None:
            parts[-1][3] = int(arg)
        else:
            parts.append([kind, arg, [], None])
    return [(k, a, "\n".join(t).strip("\n"), rc) for k, a, t, rc in parts]


def parse_host_output(host: str, apt_config: str, out: str, token: str) -> Upgrade:
    """`simulate_command`'s output as an Upgrade; ValueError when it is not whole."""
    parts = _sections(out, token)
    kinds = [p[0] for p in parts]
    if kinds[:1] == ["none"]:
        raise Unsupported(f"no apt-get on {host} (only Debian and Ubuntu are supported)")
    if kinds[:1] == ["noconf"]:
        raise ProbeError(f"host {host}: [packages] apt_config {apt_config}: no such file")
    if kinds[:2] != ["sim", "lists"] or kinds[-1] != "end" or parts[0][3] is None:
        raise ValueError(f"parts {kinds}, expected sim, lists, release ..., end")
    _, _, text, rc = parts[0]
    if rc != 0:
        last = [ln for ln in text.splitlines() if ln.strip()] or ["no output"]
        error = [ln for ln in last if ln.startswith("E:")] or last
        raise ProbeError(f"host {host}: apt-get -s dist-upgrade exited {rc}: {error[-1].strip()}")
    _whole_simulation(text)
    lists = parts[1][1]
    if not lists:
        raise ProbeError(f"host {host}: apt-config could not tell Dir::State::lists")
    releases = []
    for kind, name, body, code in sorted(parts[2:-1], key=lambda p: p[1]):
        if kind != "release" or code is None:
            raise ValueError(f"a {kind} part where a Release file was expected")
        if code != 0:
            raise ProbeError(f"host {host}: cannot read {lists.rstrip('/')}/{name}: {body[-200:]}")
        releases.append(release_of(name, body))
    return Upgrade(parse_simulation(text, releases), releases)


def _whole_simulation(text: str) -> None:
    """apt's summary line is there and every `Inst` line parses (else ValueError)."""
    if not _SUMMARY.search(text):
        raise ValueError("no 'N upgraded, N newly installed' line")
    for line in text.splitlines():
        if line.startswith("Inst ") and not _INST.match(line):
            raise ValueError(f"an Inst line that does not parse: {line[:80]!r}")


# ---- the suite's own memory of what was pending ------------------------------------------

HISTORY = "security_updates_seen.json"


def remember(state_dir: Path, pending: list[Pending], now: datetime) -> dict[str, datetime]:
    """First day each pending (package, candidate) was seen; entries no longer pending drop.

    Kept in the suite's state dir (beside the reports), never on the target.
    """
    path = state_dir / HISTORY
    try:
        seen = json.loads(path.read_text())
        if not isinstance(seen, dict):
            seen = {}
    except (OSError, ValueError):
        seen = {}
    kept: dict[str, str] = {}
    for p in pending:
        key = f"{p.package} {p.candidate}"
        kept[key] = seen.get(key) or now.isoformat()
    state_dir.mkdir(parents=True, exist_ok=True)
    # A temp file of its own: two xdist workers may remember at the same time.
    write_atomic(path, json.dumps(kept, indent=1, sort_keys=True))
    out = {}
    for key, text in kept.items():
        try:
            when = datetime.fromisoformat(text)
        except (TypeError, ValueError):
            when = now
        out[key] = when if when.tzinfo else when.replace(tzinfo=UTC)
    return out


def pending_days(p: Pending, first_seen: dict[str, datetime], now: datetime) -> float:
    """Days `p` has been pending at least: since its list's Date or since first seen."""
    starts = [t for t in (p.listed_since, first_seen.get(f"{p.package} {p.candidate}")) if t]
    start = min(starts) if starts else now
    return max(0.0, (now - start).total_seconds() / 86400)


def now() -> datetime:
    return datetime.now(UTC)
