"""Newest releases on a package index's JSON API (PyPI's `/pypi/<name>/json`).

`index_url` may also be `file:///folder`: a folder of `<name>/json` files, each as the
JSON API answers (an offline copy for air-gapped hosts; the sandbox uses one).

"Latest" is the highest PEP 440 version among the releases that have files and are not
all yanked, pre-releases and dev releases excluded (PyPI's own `info.version` may name
a pre-release when a project has nothing else).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import requests
from packaging.version import InvalidVersion, Version

from opscheck.probes import ProbeError


@dataclass(frozen=True)
class Lag:
    kind: str  # "major", "minor" or "" (same major and minor)
    behind: int  # how many majors or minors behind


def latest_release(name: str, index_url: str, timeout_s: float) -> str:
    """The newest final release of `name` on the index; ProbeError when it cannot tell."""
    url = f"{index_url.rstrip('/')}/{name}/json"
    try:
        releases = json.loads(_fetch(url, timeout_s))["releases"]
        if not isinstance(releases, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ProbeError(f"{url}: not the JSON API's answer (no releases object)") from None
    final = [v for v, files in releases.items() if _final(v) and _available(files)]
    if not final:
        raise ProbeError(f"{url}: lists no final release")
    return str(max(final, key=Version))


def _fetch(url: str, timeout_s: float) -> bytes:
    if url.startswith("file://"):
        try:
            return Path(url.removeprefix("file://")).read_bytes()
        except OSError as exc:
            raise ProbeError(f"{url}: {exc.strerror or exc}") from None
    try:
        resp = requests.get(url, timeout=timeout_s, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise ProbeError(f"{url}: no answer ({type(exc).__name__})") from None
    if resp.status_code != 200:
        raise ProbeError(f"{url}: answered {resp.status_code}")
    return resp.content


def _final(text: str) -> bool:
    try:
        v = Version(text)
    except InvalidVersion:
        return False
    return not (v.is_prerelease or v.is_devrelease)


def _available(files: object) -> bool:
    """A release with at least one file that is not yanked."""
    if not isinstance(files, list):
        return False
    return any(isinstance(f, dict) and not f.get("yanked", False) for f in files)


def lag(pinned: str, latest: str) -> Lag:
    """How far `pinned` is behind `latest` in major, else minor, version numbers."""
    p, n = Version(pinned), Version(latest)
    if n.major > p.major:
        return Lag("major", n.major - p.major)
    if n.major == p.major and n.minor > p.minor:
        return Lag("minor", n.minor - p.minor)
    return Lag("", 0)
