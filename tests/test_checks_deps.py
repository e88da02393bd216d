"""dependency_vulnerabilities and outdated_critical_packages, both ways, on real tools:
real pip-audit runs (answered by loopback servers only), real OSV records in a local
mirror (folder and zip), and a recorded PyPI JSON API answer served on 127.0.0.1."""

from __future__ import annotations

import copy
import json
import re
import zipfile
from pathlib import Path

import pytest

from opscheck.probes import ProbeError, dependencies, pypi
from opscheck.sandbox import deps as sandbox_deps
from tests.localindex import JsonServer, NotFoundProxy, json_route

DATA = Path(__file__).parent / "data"
WEEKLY = ("-m", "weekly", "-k", "test_dependency_vulnerabilities")
MONTHLY = ("-m", "monthly", "-k", "test_outdated_critical_packages")
REQUESTS_ADVISORY = sandbox_deps.OSV_RECORDS[0]  # GHSA-9hjg-9r4m-mvj7, fixed in 2.32.4
SERVICE_PINS = "fastapi==0.104.1\nuvicorn[standard]==0.24.0\nanthropic==0.7.8\nlangchain==0.0.340\n"


def write_config(tmp_path: Path, requirements: str, **sections: dict) -> Path:
    """A config naming a requirements file written here, plus the given sections."""
    req = tmp_path / "requirements.txt"
    req.write_text(requirements)
    doc = {"paths": {"app_dir": str(tmp_path), "requirements": str(req)}}
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    lines = []
    for name, values in doc.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = tmp_path / "opscheck.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_mirror(folder: Path, *records: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / f"{r['id']}.json").write_text(json.dumps(r, indent=2))
    return folder


def pysec_twin() -> dict:
    """The same requests advisory as the PyPA database names it, aliasing the GHSA."""
    twin = copy.deepcopy(REQUESTS_ADVISORY)
    twin["id"], twin["aliases"] = "PYSEC-2025-0001", ["CVE-2024-47081", "GHSA-9hjg-9r4m-mvj7"]
    return twin


# ---- requirements --------------------------------------------------------------------------


def test_read_pins_reads_what_pip_reads(tmp_path):
    (tmp_path / "extra.txt").write_text("idna==3.7\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# the service's pins\n"
        "fastapi==0.104.1  # web\n"
        "uvicorn[standard]==0.24.0\n"
        "Redis==5.0.1 \\\n    --hash=sha256:0123456789abcdef\n"
        'pywin32==306; sys_platform == "win32"\n'
        "--index-url https://pypi.org/simple\n"
        "-r extra.txt\n"
        "httpx>=0.25\n"
        "-e ./vendor/lib\n"
        "chromadb==0.4.*\n"
        "this is not a requirement\n"
    )
    pins = dependencies.read_pins(req)
    assert [(p.name, p.version) for p in pins.pins] == [
        ("fastapi", "0.104.1"),
        ("uvicorn", "0.24.0"),
        ("redis", "5.0.1"),
        ("pywin32", "306"),
        ("idna", "3.7"),
    ]
    assert [(u.line, u.why) for u in pins.unpinned] == [
        (9, "not pinned with =="),
        (10, "an editable install has no version"),
        (11, "not pinned with =="),
        (12, pins.unpinned[3].why),
    ]
    assert pins.unpinned[3].why.startswith("not a requirement")


def test_missing_requirements_is_a_one_line_reason(tmp_path):
    with pytest.raises(ProbeError, match=r"requirements.txt: no such file$"):
        dependencies.read_pins(tmp_path / "requirements.txt")


# ---- OSV matching ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "hit"),
    [("2.32.3", True), ("2.0", True), ("2.32.4", False), ("2.32.10", False), ("2.32.4rc1", True)],
)
def test_introduced_fixed_in_pep440_order(version, hit):
    got, fixed = dependencies.is_affected(version, REQUESTS_ADVISORY["affected"][0])
    assert got is hit
    assert fixed == (("2.32.4",) if hit else ())


def test_last_affected_and_versions_lists():
    entry = {
        "ranges": [
            {"type": "ECOSYSTEM", "events": [{"introduced": "1.2"}, {"last_affected": "1.4.2"}]},
            {"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc123"}]},
        ],
        "versions": ["0.9.1"],
    }
    assert dependencies.is_affected("1.4.2", entry) == (True, ())
    assert dependencies.is_affected("1.4.3", entry)[0] is False
    assert dependencies.is_affected("1.1.9", entry)[0] is False
    assert dependencies.is_affected("0.9.1", entry)[0] is True  # listed, no range covers it
    reintroduced = {
        "ranges": [
            {
                "type": "ECOSYSTEM",
                "events": [
                    {"introduced": "0"},
                    {"fixed": "1.0"},
                    {"introduced": "2.0"},
                    {"fixed": "2.1"},
                ],
            }
        ]
    }
    assert [dependencies.is_affected(v, reintroduced)[0] for v in ("0.5", "1.5", "2.0.1")] == [
        True,
        False,
        True,
    ]
    assert dependencies.is_affected("2.0.1", reintroduced)[1] == ("2.1",)


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_mirror_finds_the_advisory_and_merges_its_twin(tmp_path, form):
    withdrawn = {**copy.deepcopy(REQUESTS_ADVISORY), "id": "GHSA-old", "aliases": []}
    withdrawn["withdrawn"] = "2025-07-01T00:00:00Z"
    folder = write_mirror(tmp_path / "osv", REQUESTS_ADVISORY, pysec_twin(), withdrawn)
    folder = write_mirror(folder, *sandbox_deps.OSV_RECORDS[1:])
    mirror: Path = folder
    if form == "zip":
        mirror = tmp_path / "all.zip"
        with zipfile.ZipFile(mirror, "w") as zf:
            for f in folder.iterdir():
                zf.write(f, f.name)
    req = tmp_path / "requirements.txt"
    req.write_text("Requests==2.32.3\nfastapi==0.104.1\n")
    audit = dependencies.osv_mirror(dependencies.read_pins(req), mirror)
    assert len(audit.audited) == 2 and not audit.not_audited
    [f] = audit.findings
    assert (f.package, f.version, f.fixed) == ("requests", "2.32.3", ("2.32.4",))
    assert f.names() == {"GHSA-9hjg-9r4m-mvj7", "PYSEC-2025-0001", "CVE-2024-47081"}


def test_an_empty_mirror_is_no_verdict(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("requests==2.32.3\n")
    (tmp_path / "osv").mkdir()
    with pytest.raises(ProbeError, match="holds no OSV records"):
        dependencies.osv_mirror(dependencies.read_pins(req), tmp_path / "osv")


# ---- the check over the mirror -------------------------------------------------------------


def test_mirror_red_names_package_version_advisory_alias_fix(tmp_path, run_checks):
    mirror = write_mirror(tmp_path / "osv", REQUESTS_ADVISORY)
    cfg = write_config(
        tmp_path, SERVICE_PINS + "requests==2.32.3\n", paths={"osv_dir": str(mirror)}
    )
    entry = run_checks(cfg, *WEEKLY).one("dependency_vulnerabilities")
    assert entry["outcome"] == "failed", entry
    assert entry["message"] == (
        "requests 2.32.3: GHSA-9hjg-9r4m-mvj7 (CVE-2024-47081), fixed in 2.32.4"
    )
    ev = {e["name"]: e["value"] for e in entry["evidence"]}
    assert ev["pins looked up"] == 5


def test_mirror_green_when_every_pin_was_looked_up(tmp_path, run_checks):
    mirror = write_mirror(tmp_path / "osv", *sandbox_deps.OSV_RECORDS)
    cfg = write_config(
        tmp_path, SERVICE_PINS + "requests==2.32.4\n", paths={"osv_dir": str(mirror)}
    )
    entry = run_checks(cfg, *WEEKLY).one("dependency_vulnerabilities")
    assert entry["outcome"] == "passed", entry


def test_an_unpinned_line_is_an_error_not_a_pass(tmp_path, run_checks):
    """Before: pip-audit skips what it cannot pin; a range line is named, never clean."""
    mirror = write_mirror(tmp_path / "osv", REQUESTS_ADVISORY)
    cfg = write_config(
        tmp_path, SERVICE_PINS + "httpx>=0.25\nrequests==2.32.3\n", paths={"osv_dir": str(mirror)}
    )
    entry = run_checks(cfg, *WEEKLY).one("dependency_vulnerabilities")
    assert entry["outcome"] == "error", entry
    assert entry["message"] == (
        "setup error: no verdict: not audited: httpx>=0.25 (line 5): not pinned with ==; "
        "and found: requests 2.32.3: GHSA-9hjg-9r4m-mvj7 (CVE-2024-47081), fixed in 2.32.4"
    )


def test_a_waived_advisory_is_recorded_not_failed(tmp_path, run_checks):
    mirror = write_mirror(tmp_path / "osv", REQUESTS_ADVISORY)
    cfg = write_config(
        tmp_path,
        "requests==2.32.3\n",
        paths={"osv_dir": str(mirror)},
        packages={"waived_advisories": ["CVE-2024-47081"]},
    )
    entry = run_checks(cfg, *WEEKLY).one("dependency_vulnerabilities")
    assert entry["outcome"] == "passed", entry
    assert any(e["name"] == "waived: requests 2.32.3" for e in entry["evidence"])


# ---- the check over real pip-audit -----------------------------------------------------------


def osv_api(vulnerable: dict[tuple[str, str], dict]) -> JsonServer:
    """An OSV query API on loopback: POST /v1/query {package, version} -> {"vulns": [...]}."""

    def query(method: str, body: bytes) -> tuple[int, bytes]:
        q = json.loads(body)
        found = vulnerable.get((q["package"]["name"], q["version"]))
        return 200, json.dumps({"vulns": [found]} if found else {}).encode()

    return JsonServer({"/v1/query": query})


def test_pip_audit_red_through_an_osv_api(tmp_path, run_checks):
    with osv_api({("requests", "2.32.3"): REQUESTS_ADVISORY}) as api:
        cfg = write_config(
            tmp_path,
            "requests==2.32.3\nidna==3.7\n",
            packages={"audit_service": "osv", "osv_url": f"{api.url}/v1/query"},
        )
        entry = run_checks(cfg, *WEEKLY).one("dependency_vulnerabilities")
        asked = sorted(json.loads(b)["package"]["name"] for _, _, b in api.requests)
    assert asked == ["idna", "requests"]
    assert entry["outcome"] == "failed", entry
    # pip-audit names a vulnerability by its CVE when it has one, the GHSA as an alias
    assert entry["message"] == (
        "requests 2.32.3: CVE-2024-47081 (GHSA-9hjg-9r4m-mvj7), fixed in 2.32.4"
    )


def test_pip_audit_green_through_an_osv_api(tmp_path, run_checks):
    with osv_api({}) as api:
        cfg = write_config(
            tmp_path,
            "requests==2.32.4\nidna==3.7\n",
            packages={"audit_service": "osv", "osv_url": f"{api.url}/v1/query"},
        )
        entry = run_checks(cfg, *WEEKLY).one("dependency_vulnerabilities")
    assert entry["outcome"] == "passed", entry
    assert {e["name"]: e["value"] for e in entry["evidence"]}["pins looked up"] == 2


def test_pip_audit_offline_is_an_error(tmp_path, run_checks):
    """The OSV service unreachable (nothing listens on 127.0.0.1:1): pip-audit crashes."""
    cfg = write_config(
        tmp_path,
        "requests==2.32.3\n",
        packages={"audit_service": "osv", "osv_url": "http://127.0.0.1:1/v1/query"},
    )
    entry = run_checks(cfg, *WEEKLY).one("dependency_vulnerabilities")
    assert entry["outcome"] == "error", entry
    assert re.fullmatch(
        r"setup error: no verdict: pip-audit exited 1 without a report: .*ConnectionError.*",
        entry["message"],
    ), entry["message"]


def test_pip_audit_false_green_is_an_error(tmp_path, run_checks):
    """Before: passed. pip-audit's PyPI service answered 404 for every pin (as an index
    mirror without the vulnerability API does): pip-audit itself says "No known
    vulnerabilities found" and exits 0. Every pin not looked up is named."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cfg = write_config(tmp_path, "requests==2.32.3\nidna==3.7\n")
    env = {
        "HTTPS_PROXY": "",
        "NO_PROXY": "",
        "REQUESTS_CA_BUNDLE": str(ca_file),
    }
    with NotFoundProxy(ca) as proxy:
        env["HTTPS_PROXY"] = env["https_proxy"] = proxy.url
        entry = run_checks(cfg, *WEEKLY, env=env).one("dependency_vulnerabilities")
        tunnels = list(proxy.tunnels)
    assert tunnels and all(t.startswith("CONNECT pypi.org:443") for t in tunnels), tunnels
    assert entry["outcome"] == "error", entry
    assert entry["message"] == (
        "setup error: no verdict: not audited: requests 2.32.3: Dependency not found on PyPI "
        "and could not be audited: requests (2.32.3); idna 3.7: Dependency not found on PyPI "
        "and could not be audited: idna (3.7)"
    )


# ---- outdated_critical_packages --------------------------------------------------------------


def recorded_fastapi() -> dict:
    """https://pypi.org/pypi/fastapi/json as recorded once (trimmed: one file a release)."""
    return json.loads((DATA / "pypi_fastapi.json").read_text())


def index_like_fastapi(name: str, latest: str) -> dict:
    """Another package's answer in the recorded shape, newest final release `latest`."""
    doc = recorded_fastapi()
    files = doc["releases"]["0.104.1"]
    doc["info"] = {**doc["info"], "name": name, "version": latest}
    doc["releases"] = {"0.0.1": files, latest: files}
    return doc


def index(docs: dict[str, object], status: int = 200) -> JsonServer:
    return JsonServer({f"/pypi/{n}/json": json_route(d, status) for n, d in docs.items()})


LATEST = {"uvicorn": "0.24.0", "anthropic": "0.7.8", "langchain": "0.0.340"}


def others() -> dict[str, dict]:
    return {n: index_like_fastapi(n, v) for n, v in LATEST.items()}


def test_latest_skips_pre_releases_and_yanked_files():
    doc = recorded_fastapi()
    assert doc["info"]["version"] == "0.165.0" and "0.100.0b1" in doc["releases"]
    files = doc["releases"]["0.165.0"]
    doc["releases"]["0.166.0rc1"] = files
    doc["releases"]["0.166.0"] = [{**files[0], "yanked": True}]
    doc["releases"]["0.167.0"] = []
    with index({"fastapi": doc}) as srv:
        assert pypi.latest_release("fastapi", f"{srv.url}/pypi", 5) == "0.165.0"


def test_outdated_red_on_the_recorded_index(tmp_path, run_checks):
    with index({"fastapi": recorded_fastapi(), **others()}) as srv:
        cfg = write_config(tmp_path, SERVICE_PINS, packages={"index_url": f"{srv.url}/pypi"})
        entry = run_checks(cfg, *MONTHLY).one("outdated_critical_packages")
    assert entry["outcome"] == "failed", entry
    assert entry["message"] == (
        "fastapi is pinned at 0.104.1, latest is 0.165.0 (61 minor versions behind)"
    )
    ev = {e["name"]: (e["value"], e["limit"]) for e in entry["evidence"]}
    assert ev["fastapi pinned"] == ("0.104.1", "latest 0.165.0")


def test_outdated_green_within_a_patch_release(tmp_path, run_checks):
    docs = {"fastapi": recorded_fastapi(), **others()}
    docs["uvicorn"] = index_like_fastapi("uvicorn", "0.24.3")
    with index(docs) as srv:
        pins = SERVICE_PINS.replace("fastapi==0.104.1", "fastapi==0.165.0")
        cfg = write_config(tmp_path, pins, packages={"index_url": f"{srv.url}/pypi"})
        entry = run_checks(cfg, *MONTHLY).one("outdated_critical_packages")
    assert entry["outcome"] == "passed", entry


def test_a_major_version_behind_fails(tmp_path, run_checks):
    docs = {"fastapi": recorded_fastapi(), **others()}
    docs["anthropic"] = index_like_fastapi("anthropic", "1.0.0")
    with index(docs) as srv:
        pins = SERVICE_PINS.replace("fastapi==0.104.1", "fastapi==0.165.0")
        cfg = write_config(tmp_path, pins, packages={"index_url": f"{srv.url}/pypi"})
        entry = run_checks(cfg, *MONTHLY).one("outdated_critical_packages")
    assert entry["message"] == (
        "anthropic is pinned at 0.7.8, latest is 1.0.0 (1 major version behind)"
    )


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (b"<html>maintenance</html>", 200, "not the JSON API's answer (no releases object)"),
        ({"message": "oops"}, 500, "answered 500"),
        ({"info": {}}, 200, "not the JSON API's answer (no releases object)"),
    ],
)
def test_a_bad_index_answer_is_an_error(tmp_path, run_checks, answer, status, reason):
    docs: dict[str, object] = {"fastapi": recorded_fastapi(), **others()}
    with index(docs) as srv:
        srv.routes["/pypi/langchain/json"] = json_route(answer, status)
        cfg = write_config(tmp_path, SERVICE_PINS, packages={"index_url": f"{srv.url}/pypi"})
        entry = run_checks(cfg, *MONTHLY).one("outdated_critical_packages")
    assert entry["outcome"] == "error", entry
    assert entry["message"] == (f"setup error: no verdict: {srv.url}/pypi/langchain/json: {reason}")


def test_no_index_is_an_error(tmp_path, run_checks):
    cfg = write_config(
        tmp_path, SERVICE_PINS, packages={"index_url": "http://127.0.0.1:1/pypi", "timeout_s": 2}
    )
    entry = run_checks(cfg, *MONTHLY).one("outdated_critical_packages")
    assert entry["outcome"] == "error", entry
    assert "http://127.0.0.1:1/pypi/fastapi/json: no answer (ConnectionError)" in entry["message"]


def test_an_unpinned_critical_package_fails(tmp_path, run_checks):
    with index({"fastapi": recorded_fastapi(), **others()}) as srv:
        pins = SERVICE_PINS.replace("fastapi==0.104.1", "FastAPI>=0.100").replace(
            "langchain==0.0.340\n", ""
        )
        cfg = write_config(tmp_path, pins, packages={"index_url": f"{srv.url}/pypi"})
        entry = run_checks(cfg, *MONTHLY).one("outdated_critical_packages")
    req = tmp_path / "requirements.txt"
    assert entry["outcome"] == "failed", entry
    assert entry["message"] == (
        f"fastapi: FastAPI>=0.100 is not pinned with == in {req}, so its deployed version is "
        f"unknown; langchain: it is not listed in {req}, so its deployed version is unknown"
    )
