"""The fault matrix: each fault, injected into a sandbox, fails exactly the checks that
concern it in the cadence it concerns; every other check of that cadence passes or
skips with a stated reason, so one broken part never hides the rest. Every run also
ends within a stated bound (no hang) and leaves the report triple written.

A row is one line of `MATRIX`: `((faults...), cadence): {check ids that must fail}`.
A fault is a sandbox fault (`opscheck/sandbox/faults.py`), a harness fault of this file
(`HARNESS`: what the sandbox cannot lay out alone, e.g. a full file system), or an
option `name=value` of the sandbox (`control.Options`). The rows of one fault set share
one sandbox: its cadences run one after the other against it. `docs/faults.md` lists
every fault (a test below keeps it current).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opscheck.sandbox.faults import FAULTS
from tests.conftest import REPO, Run, Sandbox, run_pytest
from tests.test_run_faults import RUN_FAULTS

DAILY_IDS = {
    "health_endpoint_up",
    "health_components_healthy",
    "template_generation_smoke",
    "cpu_usage",
    "memory_usage",
    "disk_usage",
    "env_file_mode",
    "data_dir_modes",
    "backup_fresh",
    "error_rate",
    "avg_response_time",
    "p95_response_time",
    "slow_requests",
    "throughput_normal",
    "error_log_review",
    "warning_log_review",
    "abnormal_access",
    "llm_usage",
    "llm_api_errors",
    "tls_certificate_valid",
}
WEEKLY_IDS = {
    "backup_every_day",
    "backup_integrity",
    "backup_storage_capacity",
    "backup_retention",
    "hourly_latency_profile",
    "load_test_p95",
    "health_under_load",
    "dependency_vulnerabilities",
    "security_updates_pending",
    "secrets_in_code",
    "log_rotation_policy",
    "temp_files_cleanup",
    "cache_ttl_policy",
    "cache_hit_ratio",
    "cache_idle_keys",
    "redis_requires_auth",
    "latency_trend",
    "resource_trend",
}
MONTHLY_IDS = {
    "restore_drill",
    "outdated_critical_packages",
    "system_updates_applied",
    "key_rotation_age",
    "dr_plan_reviewed",
    "backup_policy_reviewed",
    "scaling_plan_reviewed",
    "infra_cost_reviewed",
    "capacity_forecast",
    "endpoint_latency_budget",
}
CACHE_IDS = {"cache_ttl_policy", "cache_hit_ratio", "cache_idle_keys", "redis_requires_auth"}
LOAD_IDS = {"load_test_p95", "health_under_load"}
# Backup, security, housekeeping and cache faults do not concern the load test: their
# weekly runs leave it out (it runs, with a fault and without, in the rows of `errors`
# and of the healthy sandbox); so do the cache tests' whole weekly runs
WEEKLY_BUT_LOAD = "weekly and not load"
CHECK_IDS = {
    "daily": DAILY_IDS,
    "weekly": WEEKLY_IDS,
    WEEKLY_BUT_LOAD: WEEKLY_IDS - LOAD_IDS,
    "monthly": MONTHLY_IDS,
}
HEALTH = {"health_endpoint_up", "health_components_healthy"}
APP_LOG = {"error_log_review", "warning_log_review", "llm_usage", "llm_api_errors"}
SERVING = {*HEALTH, "template_generation_smoke"}

MATRIX: dict[tuple[tuple[str, ...], str], set[str]] = {
    ((), "daily"): set(),
    ((), "weekly"): set(),
    ((), "monthly"): set(),
    # the service
    (("down",), "daily"): SERVING,
    (("slow",), "daily"): SERVING,  # answers 3 s after timeout_s: status, components unknown
    (("hang",), "daily"): SERVING,  # never answers: each request ends at timeout_s
    (("trickle",), "daily"): SERVING,  # one byte every 0.25 s: the deadline is for the whole
    (("non-json",), "daily"): {"health_components_healthy", "template_generation_smoke"},
    (("huge-body",), "daily"): SERVING,  # given up past [service] max_body_bytes
    (("redirect",), "daily"): SERVING,  # a 3xx is an answer, never followed
    (("health-500",), "daily"): HEALTH,
    (("degraded",), "daily"): {"health_components_healthy"},
    (("silent-fallback",), "daily"): {"template_generation_smoke"},
    # one smoke request cannot see a 5 % share (the load test's job); every answer 500 can
    (("errors",), "daily"): set(),
    (("errors",), "weekly"): {"load_test_p95"},
    (("errors", "error_share=1.0"), "daily"): {"template_generation_smoke"},
    (("llm-down",), "daily"): {"template_generation_smoke", "error_log_review"},
    # the LLM fails during the smoke request: the fallback body and the LLM client's
    # ERROR lines (a signature the week before never had) tell, as on the real service
    (("llm-401",), "daily"): {"template_generation_smoke", "error_log_review", "llm_api_errors"},
    (("llm-overloaded",), "daily"): {"template_generation_smoke", "error_log_review"},
    (("embeddings-401",), "daily"): {
        "template_generation_smoke",
        "error_log_review",
        "llm_api_errors",
    },
    # TLS
    (("tls-expiring",), "daily"): {"tls_certificate_valid"},
    (("tls-expired",), "daily"): {*SERVING, "tls_certificate_valid"},
    (("tls-wrong-host",), "daily"): {*SERVING, "tls_certificate_valid"},
    (("tls-intermediate-expiring",), "daily"): {"tls_certificate_valid"},
    # the host and its files
    (("cpu-hog",), "daily"): {"cpu_usage"},
    (("disk-over-limit",), "daily"): {"disk_usage"},
    (("env-mode",), "daily"): {"env_file_mode"},
    (("env-owner",), "daily"): {"env_file_mode"},
    (("dir-mode",), "daily"): {"data_dir_modes"},
    # backups
    (("stale-backup",), "daily"): {"backup_fresh"},
    (("future-backup",), "daily"): {"backup_fresh"},
    (("empty-backup",), "daily"): {"backup_fresh"},
    (("tiny-backup",), "daily"): {"backup_fresh"},
    (("corrupt-backup",), "daily"): set(),
    (("corrupt-backup",), WEEKLY_BUT_LOAD): {"backup_integrity"},
    (("missing-day",), "daily"): set(),
    (("missing-day",), WEEKLY_BUT_LOAD): {"backup_every_day"},
    (("old-backups-kept",), "daily"): set(),
    (("old-backups-kept",), WEEKLY_BUT_LOAD): {"backup_retention"},
    (("symlinked-chroma",), "daily"): set(),  # every night's archive holds only the link
    (("symlinked-chroma",), WEEKLY_BUT_LOAD): {"backup_integrity"},
    (("symlinked-chroma",), "monthly"): {"restore_drill"},
    (("shrunk-backup",), "daily"): {"backup_fresh"},  # under 10 % of the night before
    (("shrunk-backup",), WEEKLY_BUT_LOAD): {"backup_integrity"},
    (("shrunk-backup",), "monthly"): {"restore_drill"},
    (("traversal-backup",), "daily"): set(),
    (("traversal-backup",), WEEKLY_BUT_LOAD): {"backup_integrity"},
    (("traversal-backup",), "monthly"): {"restore_drill"},
    (("backup-mtime",), "daily"): {"backup_fresh"},
    (("config-without-env",), "daily"): set(),
    (("config-without-env",), "monthly"): {"restore_drill"},
    (("restore-mismatch",), "monthly"): {"restore_drill"},
    # logs
    (("error-heavy-log",), "daily"): {"error_rate"},
    # slow generations also log "Slow operation" WARNING lines, as the real service does
    (("slow-log",), "daily"): {
        "avg_response_time",
        "p95_response_time",
        "slow_requests",
        "warning_log_review",
    },
    (("spike",), "daily"): {"throughput_normal"},
    (("scanner",), "daily"): {"abnormal_access"},
    (("key-in-log",), "daily"): {"llm_usage"},
    (("new-error",), "daily"): {"error_log_review"},
    (("warning-storm",), "daily"): {"warning_log_review"},
    (("multiline-failures",), "daily"): {"error_rate"},
    (("key-revoked-log",), "daily"): {"llm_api_errors"},  # since yesterday: not new, failing
    (("llm-overloaded-log",), "daily"): {"llm_api_errors", "error_log_review"},
    (("telemetry-restart",), "daily"): set(),  # noise ([logs] ignore_errors), never new
    (("logs-in-kst",), "daily"): APP_LOG,  # "set service.timezone"; access log has offsets
    (("junk-log",), "daily"): APP_LOG,
    (("fifo-log",), "daily"): {*APP_LOG, "template_generation_smoke"},  # its window too
    (("truncated-log-gz",), "daily"): APP_LOG,
    (("dateext-logs",), "daily"): set(),  # not a fault: dateext names and xz, read
    # dependencies, patches, keys (offline: the sandbox's OSV mirror, index and apt world)
    (("vulnerable-pin",), WEEKLY_BUT_LOAD): {"dependency_vulnerabilities"},
    (("unpinned-dependency",), WEEKLY_BUT_LOAD): {"dependency_vulnerabilities"},  # error
    (("stale-critical-package",), "monthly"): {"outdated_critical_packages"},
    (("old-key",), "monthly"): {"key_rotation_age"},
    (("key-value-in-registry",), "monthly"): set(),  # not a fault: the value is never shown
    (("security-update-pending",), WEEKLY_BUT_LOAD): {"security_updates_pending"},
    (("stale-security-update",), WEEKLY_BUT_LOAD): {"security_updates_pending"},
    (("stale-security-update",), "monthly"): {"system_updates_applied"},
    # secrets and housekeeping
    (("secret-in-source",), WEEKLY_BUT_LOAD): {"secrets_in_code"},
    (("weak-logrotate",), WEEKLY_BUT_LOAD): {"log_rotation_policy"},
    (("uncompressed-rotated",), WEEKLY_BUT_LOAD): {"log_rotation_policy"},
    (("logs-beyond-retention",), WEEKLY_BUT_LOAD): {"log_rotation_policy"},
    (("oversized-live-log",), WEEKLY_BUT_LOAD): {"log_rotation_policy"},
    (("old-temp-files",), WEEKLY_BUT_LOAD): {"temp_files_cleanup"},
    # the cache
    (("redis-no-ttl",), WEEKLY_BUT_LOAD): {"cache_ttl_policy"},
    (("redis-ttl-over",), WEEKLY_BUT_LOAD): {"cache_ttl_policy"},
    (("redis-idle",), WEEKLY_BUT_LOAD): {"cache_idle_keys"},
    (("redis-low-hits",), WEEKLY_BUT_LOAD): {"cache_hit_ratio"},
    (("redis-no-auth",), WEEKLY_BUT_LOAD): {"redis_requires_auth"},
    (("redis-down",), WEEKLY_BUT_LOAD): CACHE_IDS,
    (("redis-lfu",), WEEKLY_BUT_LOAD): set(),  # cache_idle_keys skips, saying why
    # the human reviews (attestations)
    (("stale-review",), "monthly"): {"dr_plan_reviewed"},
    # the history the daily runs keep (the sandbox's: four weeks, stored by the writer)
    (("latency-regression",), WEEKLY_BUT_LOAD): {"latency_trend"},
    (("disk-filling",), WEEKLY_BUT_LOAD): {"resource_trend"},
    (("disk-filling",), "monthly"): {"capacity_forecast"},
    # two replicas behind the balancer: the dead one's rows fail (tests/test_replicas.py
    # shows the balancer's and the live replica's rows of the same checks green)
    (("replica-down",), "daily"): SERVING,
}

# Seconds each cadence's run may take beyond its configured timeouts: pytest's start,
# reading 30 days of backups and 8 days of logs, on a loaded 2-core machine.
MARGIN_S = {"daily": 60.0, "weekly": 90.0, "monthly": 90.0}
HTTP_REQUESTS = {"daily": 4, "weekly": 0, "monthly": 0}  # 2 x /health, 1 smoke, 1 TLS
PER_TARGET = {"daily": 3, "weekly": 0, "monthly": 0}  # of those, asked of each service target
LOAD_S = 5.0  # [load] duration_s below: the weekly run's load test
TIMEOUT_S = 1.0  # [service] timeout_s of the matrix's sandboxes
# The weekly load test, short: enough requests of each endpoint for a verdict, 5 s of load
LOAD = f"[load]\nusers = 10\nspawn_rate = 10\nduration_s = {LOAD_S:g}\nmin_requests = 5\n"


@dataclass
class Harness:
    """What a harness fault gives the run: extra config TOML merged into the sandbox's."""

    config: str = ""


def _disk_over_limit(sb: Sandbox, tmpfs: Callable[[str], Path]) -> Harness:
    """A 4 MiB tmpfs listed in [paths] disk_mounts, filled to 95 % (the limit is 90 %)."""
    mnt = tmpfs("size=4m,mode=755")
    blocks = int(4 * 1024 * 0.95)
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={mnt / 'fill'}", "bs=1024", f"count={blocks}"],
        check=True,
        capture_output=True,
    )
    return Harness(f'[paths]\ndisk_mounts = ["/", "{mnt}"]\n')


HARNESS: dict[str, Callable[[Sandbox, Callable[[str], Path]], Harness]] = {
    "disk-over-limit": _disk_over_limit,
}


def _split(faults: tuple[str, ...]) -> tuple[tuple[str, ...], list[str], dict[str, Any]]:
    """(sandbox faults, harness faults, sandbox options) of a row's fault set."""
    options = dict(f.split("=", 1) for f in faults if "=" in f)
    typed = {k: float(v) for k, v in options.items()}
    harness = [f for f in faults if f in HARNESS]
    sandbox = tuple(f for f in faults if "=" not in f and f not in HARNESS)
    return sandbox, harness, typed


def bound_s(cadence: str, timeout_s: float, cpu_sample_s: float = 1.0, targets: int = 1) -> float:
    """How long a run of `cadence` (a marker expression) may take: its HTTP requests'
    timeouts (the health and smoke requests once per service target: base_url, and the
    replicas of `[service] base_urls`), the CPU sample, the load test's duration and its
    last request's timeout, and the margin."""
    base = cadence.split()[0]
    load = LOAD_S + timeout_s if base == "weekly" and "not load" not in cadence else 0.0
    requests = HTTP_REQUESTS[base] + PER_TARGET[base] * (targets - 1)
    return requests * timeout_s + cpu_sample_s + load + MARGIN_S[base]


def service_targets(config: Path) -> int:
    """How many URLs the service checks ask: base_url, and each of base_urls."""
    import tomllib

    return 1 + len(tomllib.loads(config.read_text()).get("service", {}).get("base_urls", []))


def run_cadence(config: Path, reports: Path, cadence: str, limit_s: float) -> tuple[Run, float]:
    """One `pytest -m <cadence>` against `config`; (the run, its wall time in s)."""
    start = time.monotonic()
    try:
        proc = run_pytest(
            ["--reports-dir", str(reports), "--ops-config", str(config), "-m", cadence],
            timeout=limit_s + 60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"pytest -m {cadence} still running after {limit_s + 60:g} s: a hang")
    seconds = time.monotonic() - start
    report = _json_report(reports)
    return Run(proc.returncode, proc.stdout, proc.stderr, reports, report), seconds


def _json_report(reports: Path) -> dict[str, Any]:
    found = sorted(p for p in reports.glob("*/*.json") if not p.parent.name.startswith("."))
    if len(found) != 1:
        return {}
    return json.loads(found[0].read_text())


def problems_of(run: Run, cadence: str, expected: set[str], seconds: float, limit: float):
    """What is wrong with one run of the matrix, one sentence each ([] = all held)."""
    out = []
    if seconds > limit:
        out.append(f"took {seconds:.1f} s, bound {limit:.1f} s")
    out += triple_problems(run.reports_dir)
    outcomes = run.outcomes()
    if set(outcomes) != CHECK_IDS[cadence]:
        missing, extra = CHECK_IDS[cadence] - set(outcomes), set(outcomes) - CHECK_IDS[cadence]
        out.append(f"checks reported: missing {sorted(missing)}, unexpected {sorted(extra)}")
    if run.failed_ids() != expected:
        out.append(f"failed {sorted(run.failed_ids())}, expected {sorted(expected)}: {outcomes}")
    for entry in run.report.get("checks", []):
        if entry["outcome"] in ("failed", "error", "skipped") and not entry["message"].strip():
            out.append(f"{entry['id']} {entry['outcome']} without a reason")
    want_exit = 1 if expected else 0
    if run.exit_code != want_exit or run.report.get("exit_code") != run.exit_code:
        out.append(
            f"exit code {run.exit_code} (JSON says {run.report.get('exit_code')}), "
            f"expected {want_exit}: {run.stderr[-300:]}"
        )
    return [f"-m {cadence}: {p}" for p in out]


def triple_problems(reports: Path) -> list[str]:
    """The HTML, XML and complete JSON report of the run, side by side."""
    jsons = [p for p in reports.glob("*/*.json") if not p.parent.name.startswith(".")]
    if len(jsons) != 1:
        return [f"{len(jsons)} JSON reports in {reports}"]
    doc = json.loads(jsons[0].read_text())
    out = []
    if doc.get("status") == "running" or "finished" not in doc or "checks" not in doc:
        out.append(f"JSON report incomplete: {str(doc)[:200]}")
    for suffix in (".html", ".xml"):
        other = jsons[0].with_suffix(suffix)
        if not other.is_file() or other.stat().st_size == 0:
            out.append(f"no {suffix} report beside {jsons[0].name}")
    return out


FAULT_SETS = list(dict.fromkeys(faults for faults, _ in MATRIX))
CADENCE_ORDER = tuple(CHECK_IDS)


# Rows that measure this machine run alone (`serial`): the healthy one and cpu-hog prove
# cpu_usage both ways; `errors` and the healthy row time a real load test. The others run
# beside other tests, with cpu_usage's limit lifted (tests/conftest.py: sandbox_factory).
SERIAL = {(), ("cpu-hog",), ("errors",)}
PARAMS = [
    pytest.param(f, marks=[pytest.mark.serial] if f in SERIAL else [], id="-".join(f) or "healthy")
    for f in FAULT_SETS
]


@pytest.mark.slow
@pytest.mark.parametrize("faults", PARAMS)
def test_fault_fails_exactly_the_concerned_checks(sandbox_factory, tmpfs, tmp_path, faults):
    sandbox_faults, harness, options = _split(faults)
    sb = sandbox_factory(*sandbox_faults, timeout_s=TIMEOUT_S, **options)
    extra = LOAD + "".join(HARNESS[name](sb, tmpfs).config for name in harness)
    config = sb.with_config(extra)
    problems = []
    for cadence in (c for c in CADENCE_ORDER if (faults, c) in MATRIX):
        limit = bound_s(cadence, TIMEOUT_S, targets=service_targets(config))
        reports = tmp_path / f"reports-{cadence.replace(' ', '-')}"
        run, seconds = run_cadence(config, reports, cadence, limit)
        problems += problems_of(run, cadence, MATRIX[(faults, cadence)], seconds, limit)
    assert not problems, "\n".join(problems)


def test_every_row_names_known_faults_and_checks():
    for (faults, cadence), failing in MATRIX.items():
        sandbox_faults = _split(faults)[0]
        assert set(sandbox_faults) <= set(FAULTS), faults
        assert failing <= CHECK_IDS[cadence], (faults, cadence, failing - CHECK_IDS[cadence])


def test_docs_name_every_fault():
    """docs/faults.md lists every fault of the sandbox, of the matrix and of the run."""
    text = (REPO / "docs" / "faults.md").read_text()
    named = set(re.findall(r"^\| `([^`]+)`", text, re.M))
    matrix = {f for faults, _ in MATRIX for f in faults if "=" not in f}
    wanted = set(FAULTS) | matrix | set(RUN_FAULTS)
    assert wanted <= named, f"docs/faults.md lacks {sorted(wanted - named)}"


def _documented_rows(text: str) -> dict[str, list[tuple[str, str]]]:
    """fault -> [(cadence label, must-fail cell)] from the matrix tables of the page."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[0].strip("`") in _MATRIXED:
            rows[cells[0].strip("`")] = list(
                zip(cells[3].split("<br>"), cells[4].split("<br>"), strict=True)
            )
    return rows


def _expected_rows(name: str) -> list[tuple[str, str]]:
    out = []
    for (faults, cadence), failing in MATRIX.items():
        if faults and faults[0] == name:
            label = cadence + (f" ({' '.join(faults[1:])})" if faults[1:] else "")
            out.append((label, ", ".join(f"`{i}`" for i in sorted(failing)) or "none"))
    return out


_MATRIXED = {faults[0] for faults, _ in MATRIX if faults}


def test_docs_say_what_each_fault_must_fail():
    """docs/faults.md's cadence and must-fail cells are the matrix's rows."""
    documented = _documented_rows((REPO / "docs" / "faults.md").read_text())
    wrong = {
        name: (documented.get(name), _expected_rows(name))
        for name in sorted(_MATRIXED)
        if documented.get(name) != _expected_rows(name)
    }
    assert not wrong, wrong
