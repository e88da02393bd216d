"""Service checks per replica (`[service] base_urls`): the load balancer and each replica
get their own rows of health_endpoint_up, health_components_healthy and
template_generation_smoke, proven both ways against real sandbox replicas; no
credential of a replica URL shows in an id, the output or a report."""

from __future__ import annotations

import re
import tomllib
from urllib.parse import quote

import pytest

from opscheck.config import Service
from opscheck.replicas import ServiceTarget, service_targets, url_label
from tests.conftest import Run
from tests.test_no_leak import forms, history_text

SERVING = ("health_endpoint_up", "health_components_healthy", "template_generation_smoke")
RUN = ["-m", "daily", "-k", " or ".join(f"test_{c}" for c in SERVING)]
REPLICA_PW = "Cn4ryReplica/Pw#3?"  # percent-encoded in the URL, as URLs need it
ENV_PW = "Cn4ryReplicaEnvPw9"  # a ${VAR} in a replica URL


def service(sb) -> dict:
    return tomllib.loads(sb.config.read_text())["service"]


def label(url: str) -> str:
    return url.split("://", 1)[1]


def rows(run: Run) -> dict[tuple[str, str], dict]:
    """(check id, parameter id) -> the JSON report's entry."""
    out = {}
    for entry in run.report.get("checks", []):
        param = re.search(r"\[(.*)\]$", entry["nodeid"])
        out[(entry["id"], param.group(1) if param else "")] = entry
    return out


def expected_params(svc: dict) -> list[str]:
    return [f"lb-{label(svc['base_url'])}", *(f"replica-{label(u)}" for u in svc["base_urls"])]


def test_two_healthy_replicas_and_the_balancer_each_get_a_green_row(sandbox_factory, run_checks):
    sb = sandbox_factory(replicas=2)
    svc = service(sb)
    assert len(svc["base_urls"]) == 2 and svc["base_url"] not in svc["base_urls"]
    run = run_checks(sb.config, *RUN)
    got = rows(run)
    params = expected_params(svc)
    assert sorted(got) == sorted((c, p) for c in SERVING for p in params), sorted(got)
    for (_, param), entry in got.items():
        assert entry["outcome"] == "passed", entry
        role, where = param.split("-", 1)
        name = "load balancer" if role == "lb" else "replica"
        assert {"name": name, "value": where, "unit": "", "limit": None} in entry["evidence"]
    assert run.exit_code == 0


def test_a_replica_down_fails_only_its_own_rows(sandbox_factory, run_checks):
    """Before: the balancer skipped the dead replica and every check was green."""
    sb = sandbox_factory("replica-down", timeout_s=1.0)
    svc = service(sb)
    alive, dead = svc["base_urls"]
    run = run_checks(sb.config, *RUN)
    got = rows(run)
    assert run.exit_code == 1
    for (check, param), entry in got.items():
        want = "failed" if param == f"replica-{label(dead)}" else "passed"
        assert entry["outcome"] == want, (check, param, entry["message"])
    up = got[("health_endpoint_up", f"replica-{label(dead)}")]["message"]
    assert re.fullmatch(
        rf"replica {label(dead)}: GET {dead}/health: cannot connect: Connection refused "
        r"after [\d.]+ ms, limit 1000 ms",
        up,
    ), up
    components = got[("health_components_healthy", f"replica-{label(dead)}")]["message"]
    assert components.startswith(f"replica {label(dead)}: GET {dead}/health: cannot connect")
    smoke = got[("template_generation_smoke", f"replica-{label(dead)}")]["message"]
    assert smoke.startswith(f"replica {label(dead)}: request 1: POST {dead}/api/v1/"), smoke
    assert got[("health_endpoint_up", f"lb-{label(svc['base_url'])}")]["outcome"] == "passed"
    assert got[("health_endpoint_up", f"replica-{label(alive)}")]["outcome"] == "passed"


def test_a_replica_answering_500_on_health_fails_its_health_rows(sandbox_factory, run_checks):
    healthy, broken = sandbox_factory(), sandbox_factory("health-500")
    lb, bad = service(healthy)["base_url"], service(broken)["base_url"]
    config = healthy.with_config(f'[service]\nbase_urls = ["{lb}", "{bad}"]\n')
    got = rows(run_checks(config, *RUN))
    assert {k: e["outcome"] for k, e in got.items() if e["outcome"] != "passed"} == {
        ("health_endpoint_up", f"replica-{label(bad)}"): "failed",
        ("health_components_healthy", f"replica-{label(bad)}"): "failed",
    }
    up = got[("health_endpoint_up", f"replica-{label(bad)}")]
    assert up["message"] == (
        f"replica {label(bad)}: GET {bad}/health answered 500 (HEALTH_CHECK_FAILED), expected 200"
    )
    assert {"name": "HTTP status", "value": 500, "unit": "", "limit": 200} in up["evidence"]
    assert len(got) == 9  # the balancer and both replicas, one row each per check


def test_a_password_in_a_replica_url_shows_nowhere(sandbox_factory, run_checks):
    sb = sandbox_factory("replica-down", timeout_s=1.0)
    svc = service(sb)
    alive, dead = (label(u) for u in svc["base_urls"])
    urls = [f"http://ops:{quote(REPLICA_PW, safe='')}@{alive}", f"http://ops:${{RP_PW}}@{dead}"]
    config = sb.with_config(f"[service]\nbase_urls = {urls!r}\n".replace("'", '"'))
    run = run_checks(config, *RUN, "-v", "-rA", env={"RP_PW": ENV_PW})
    got = rows(run)
    assert {p for _, p in got} == {
        f"lb-{label(svc['base_url'])}",
        f"replica-{alive}",
        f"replica-{dead}",
    }
    assert got[("health_endpoint_up", f"replica-{dead}")]["outcome"] == "failed"
    assert got[("health_endpoint_up", f"replica-{alive}")]["outcome"] == "passed"
    assert f"GET http://{dead}/health: cannot connect" in run.stdout  # the failure is printed
    texts = {"stdout": run.stdout, "stderr": run.stderr, "history": history_text(sb)}
    texts |= {
        str(p): p.read_text(errors="replace") for p in run.reports_dir.rglob("*") if p.is_file()
    }
    leaked = [
        f"{form!r} in {where}"
        for where, text in texts.items()
        for secret in (REPLICA_PW, ENV_PW)
        for form in forms(secret)
        if form in text
    ]
    assert not leaked, leaked


def test_without_base_urls_the_ids_are_the_plain_check_ids(tmp_path, run_checks):
    """base_url alone: no parameter, the ids of before (waivers and history refer to them)."""
    from tests.conftest import run_pytest

    config = tmp_path / "opscheck.toml"
    config.write_text('[service]\nbase_url = "http://127.0.0.1:9"\n')
    proc = run_pytest(["--collect-only", "-q", "--ops-config", str(config), *RUN])
    ids = sorted(line for line in proc.stdout.splitlines() if "::" in line)
    assert ids == [
        "checks/daily/test_generation.py::test_template_generation_smoke",
        "checks/daily/test_service.py::test_health_components_healthy",
        "checks/daily/test_service.py::test_health_endpoint_up",
    ]
    config.write_text(
        '[service]\nbase_url = "http://lb.example"\n'
        'base_urls = ["http://10.0.0.5:8000/", "https://u:pw@10.0.0.6:8000/app?t=1"]\n'
    )
    proc = run_pytest(["--collect-only", "-q", "--ops-config", str(config), *RUN])
    ids = [line for line in proc.stdout.splitlines() if "test_health_endpoint_up" in line]
    assert ids == [
        f"checks/daily/test_service.py::test_health_endpoint_up[{p}]"
        for p in ("lb-lb.example", "replica-10.0.0.5:8000", "replica-10.0.0.6:8000/app")
    ]


def test_a_base_urls_entry_that_is_not_a_url_stops_the_run(tmp_path, run_checks):
    config = tmp_path / "opscheck.toml"
    config.write_text('[service]\nbase_urls = ["http://10.0.0.5", "10.0.0.6:secretpw"]\n')
    run = run_checks(config, *RUN)
    assert run.exit_code == 4
    assert "[service] base_urls: entry 2: not an http:// or https:// URL" in run.stderr
    assert "secretpw" not in run.stderr + run.stdout


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("http://127.0.0.1:8001", "127.0.0.1:8001"),
        ("https://ops:p%40ss@10.0.0.5:8443/", "10.0.0.5:8443"),
        ("http://ops:p@ss/w@10.0.0.5/app/?token=x#f", "10.0.0.5/app"),
        ("http://token@replica-3.internal", "replica-3.internal"),
    ],
)
def test_url_label_keeps_host_port_and_path_only(url, want):
    assert url_label(url) == want


def test_targets_are_base_url_alone_or_the_balancer_then_each_replica_once():
    assert service_targets(Service()) == [ServiceTarget("http://127.0.0.1:8000")]
    svc = Service(base_url="http://lb", base_urls=["http://a", "http://b", "http://a"])
    assert [t.id for t in service_targets(svc)] == ["lb-lb", "replica-a", "replica-b"]
    assert [t.name for t in service_targets(svc)][:2] == ["load balancer lb", "replica a"]
