"""The sandbox's dependency world, below `<root>/deps/`: an OSV advisory mirror, an offline
copy of the package index's JSON API and a private apt world (opscheck.sandbox.aptrepo).

Everything is local, so a sandbox's weekly and monthly runs are deterministic and
offline. The healthy world: no advisory affects the service's pins, each critical package
is pinned at its newest final release (a newer pre-release and a newer yanked release
exist, and are not "latest"), and apt has nothing pending.
"""

from __future__ import annotations

import json
from pathlib import Path

from opscheck.sandbox import aptrepo

# OSV records in the real schema: ids, aliases and affected ranges as published (the
# dates are approximate), trimmed to the fields the match reads and shows.
OSV_RECORDS = [
    {
        "schema_version": "1.6.0",
        "id": "GHSA-9hjg-9r4m-mvj7",
        "modified": "2025-06-10T18:31:52Z",
        "published": "2025-06-09T19:06:08Z",
        "aliases": ["CVE-2024-47081"],
        "summary": "Requests vulnerable to .netrc credentials leak via malicious URLs",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "requests", "purl": "pkg:pypi/requests"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.32.4"}]}
                ],
            }
        ],
        "database_specific": {"severity": "MODERATE", "cwe_ids": ["CWE-522"]},
    },
    {
        "schema_version": "1.6.0",
        "id": "GHSA-8h2j-cgx8-6xv7",
        "modified": "2024-10-15T00:00:00Z",
        "published": "2021-06-10T17:21:23Z",
        "aliases": ["CVE-2021-32677"],
        "summary": "Cross-Site Request Forgery (CSRF) in FastAPI",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "fastapi", "purl": "pkg:pypi/fastapi"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "0.65.2"}]}
                ],
            }
        ],
        "database_specific": {"severity": "HIGH", "cwe_ids": ["CWE-352"]},
    },
]

# pinned (newest final release), older finals, and newer ones that are not "latest"
INDEX = {
    "fastapi": ("0.104.1", ["0.103.2", "0.104.0"], {"0.105.0b1": False}),
    "uvicorn": ("0.24.0", ["0.23.2", "0.24.0.post1"], {"0.25.0.dev0": False}),
    "anthropic": ("0.7.8", ["0.7.7"], {"0.8.0": True}),  # 0.8.0 was yanked
    "langchain": ("0.0.340", ["0.0.339"], {"0.1.0rc1": False}),
}


def osv_dir(root: Path) -> Path:
    return root / "deps" / "osv"


def index_dir(root: Path) -> Path:
    return root / "deps" / "pypi"


def apt_dir(root: Path) -> Path:
    return root / "deps" / "apt"


def write(root: Path) -> None:
    """The healthy dependency world below `root/deps`."""
    mirror = osv_dir(root)
    mirror.mkdir(parents=True, exist_ok=True)
    for record in OSV_RECORDS:
        (mirror / f"{record['id']}.json").write_text(json.dumps(record, indent=2))
    for name, (latest, older, newer) in INDEX.items():
        releases = {v: [_file(name, v)] for v in [*older, latest]}
        releases |= {v: [_file(name, v, yanked)] for v, yanked in newer.items()}
        write_index(root, name, latest, releases)
    aptrepo.prepare(apt_dir(root))


def _file(name: str, version: str, yanked: bool = False) -> dict:
    return {
        "filename": f"{name}-{version}.tar.gz",
        "packagetype": "sdist",
        "upload_time_iso_8601": "2023-11-20T12:00:00.000000Z",
        "yanked": yanked,
        "yanked_reason": "broken release" if yanked else None,
    }


def write_index(root: Path, name: str, version: str, releases: dict[str, list]) -> None:
    """`<index>/<name>/json` in the JSON API's shape."""
    folder = index_dir(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"info": {"name": name, "version": version}, "releases": releases, "urls": []}
    (folder / "json").write_text(json.dumps(doc, indent=1))


def add_release(root: Path, name: str, version: str) -> None:
    """A new final release of `name` appears on the index."""
    path = index_dir(root) / name / "json"
    doc = json.loads(path.read_text())
    doc["releases"][version] = [_file(name, version)]
    doc["info"]["version"] = version
    path.write_text(json.dumps(doc, indent=1))
