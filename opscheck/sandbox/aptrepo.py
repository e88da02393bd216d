"""A private apt world for the patch checks: its own apt.conf, state, lists, dpkg status and
a local repository, so real `apt-get` runs against it and never touches the host's apt.

`prepare()` writes an apt.conf (passed as `APT_CONFIG`, the `[packages] apt_config`
key) whose sources list is empty and whose dpkg status lists nothing: nothing is pending.
`publish()` builds a fake package at two versions with `dpkg-deb`, marks the older one
installed in the private dpkg status, indexes the newer one with `apt-ftparchive` in a
flat repository whose Release says it is a security suite (Origin Debian, Label
Debian-Security, Suite stable-security, as the real one), optionally dated in the past,
and runs `apt-get update` into the private lists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

PACKAGE = "opscheck-fake-libssl"
SECURITY = {"Origin": "Debian", "Label": "Debian-Security", "Suite": "stable-security"}
REGULAR = {"Origin": "Debian", "Label": "Debian", "Suite": "stable"}


def prepare(root: Path) -> Path:
    """An empty private apt world below `root`; returns its apt.conf."""
    for d in ("state/lists/partial", "cache/archives/partial", "etc/sources.list.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for d in ("etc/apt.conf.d", "etc/preferences.d", "etc/trusted.gpg.d", "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "sources.list").touch()
    (root / "status").touch()
    conf = root / "apt.conf"
    conf.write_text(
        f'Dir::State "{root}/state";\n'
        'Dir::State::lists "lists";\n'
        f'Dir::State::status "{root}/status";\n'
        f'Dir::Cache "{root}/cache";\n'
        f'Dir::Log "{root}/log";\n'
        f'Dir::Etc "{root}/etc";\n'
        'Dir::Etc::SourceList "sources.list";\n'
        'Dir::Etc::SourceParts "sources.list.d";\n'
        'Dir::Etc::Parts "apt.conf.d";\n'
        'Dir::Etc::Preferences "preferences";\n'
        'Dir::Etc::PreferencesParts "preferences.d";\n'
        'Dir::Etc::TrustedParts "trusted.gpg.d";\n'
        'Debug::NoLocking "true";\n'
        'Acquire::Languages "none";\n'
        'APT::Sandbox::User "root";\n'
    )
    return conf


def tools_missing() -> list[str]:
    return [t for t in ("apt-get", "dpkg-deb", "apt-ftparchive") if shutil.which(t) is None]


def publish(
    root: Path,
    installed: str = "1.0-1",
    candidate: str = "1.0-2",
    release: dict[str, str] | None = None,
    date: datetime | None = None,
) -> Path:
    """Install `installed` (in the private status), publish `candidate` in a repository with
    `release`'s fields (default: a security suite) dated `date` (default: now), update."""
    missing = tools_missing()
    if missing:
        raise RuntimeError(f"needs {', '.join(missing)} (apt-get install apt-utils dpkg)")
    conf = prepare(root)
    repo = root / "repo"
    repo.mkdir(exist_ok=True)
    _build_deb(repo, candidate)
    _install(root / "status", installed)
    _index(repo, release or SECURITY, date or datetime.now(UTC))
    (root / "etc" / "sources.list").write_text(f"deb [trusted=yes] file:{repo} ./\n")
    _apt(conf, "update")
    return conf


def _control(version: str) -> str:
    return (
        f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: opscheck sandbox <ops@example.invalid>\nSection: libs\n"
        "Priority: optional\nDescription: a fake library standing in for a patched one\n"
    )


def _build_deb(repo: Path, version: str) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "DEBIAN").mkdir()
        (Path(tmp) / "DEBIAN" / "control").write_text(_control(version))
        out = repo / f"{PACKAGE}_{version}_all.deb"
        _run(["dpkg-deb", "--root-owner-group", "--build", tmp, str(out)])
    return out


def _install(status: Path, version: str) -> None:
    """Mark `version` installed in the private dpkg status file (dpkg itself is not run)."""
    installed = _control(version).replace("Version:", "Status: install ok installed\nVersion:")
    status.write_text(installed)


def _index(repo: Path, release: dict[str, str], date: datetime) -> None:
    packages = _run(["apt-ftparchive", "packages", "."], cwd=repo)
    (repo / "Packages").write_text(packages)
    opts = [f"-oAPT::FTPArchive::Release::{k}={v}" for k, v in release.items()]
    opts += ["-oAPT::FTPArchive::Release::Version=12"]
    text = _run(["apt-ftparchive", *opts, "release", "."], cwd=repo)
    stamp = format_datetime(date.astimezone(UTC), usegmt=True)
    text = re.sub(r"^Date: .*$", f"Date: {stamp}", text, count=1, flags=re.M)
    (repo / "Release").write_text(text)


def _apt(conf: Path, *args: str) -> str:
    return _run(["apt-get", "-q", *args], env_conf=conf)


def _run(cmd: list[str], cwd: Path | None = None, env_conf: Path | None = None) -> str:
    env = {**os.environ, "LC_ALL": "C"}
    if env_conf is not None:
        env["APT_CONFIG"] = str(env_conf)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)
