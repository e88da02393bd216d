"""The node_exporter textfile: written by a real daily run, read back with
prometheus_client's own text parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opscheck import metrics
from tests.conftest import load_report, run_pytest

# the whole daily list but the host-load checks (this machine is shared: its CPU is busy)
STEADY = "not cpu_usage and not memory_usage"


def samples(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def one(found: dict[str, list], metric: str, **labels: str):
    hits = [
        s for s in found.get(metric, []) if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(hits) == 1, (metric, labels, hits)
    return hits[0]


@pytest.mark.slow
def test_a_daily_run_writes_the_textfile(sandbox_factory, tmp_path):
    broken = sandbox_factory("env-mode")
    textdir = tmp_path / "textfile"
    textdir.mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text(broken.config.read_text() + f'\n[reports]\ntextfile = "{textdir}"\n')
    reports = tmp_path / "reports"
    before = datetime.now(UTC).timestamp()
    proc = run_pytest(
        ["-m", "daily", "-k", STEADY, "--reports-dir", str(reports), "--ops-config", str(cfg)]
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    doc = load_report(reports)
    prom = textdir / "opscheck-daily.prom"
    assert [p.name for p in textdir.iterdir()] == [prom.name], "no temp file left"
    assert doc["textfile"] == {"path": str(prom)}
    found = samples(prom)

    env = one(found, "opscheck_check_success", id="env_file_mode")
    assert env.value == 0 and env.labels == {
        "id": "env_file_mode",
        "param": "local",
        "cadence": "daily",
        "label": "daily",
    }
    assert one(found, "opscheck_check_success", id="backup_fresh").value == 1
    assert one(found, "opscheck_check_outcome", id="env_file_mode", outcome="failed").value == 1
    assert one(found, "opscheck_check_outcome", id="env_file_mode", outcome="passed").value == 0
    assert one(found, "opscheck_run_checks", outcome="failed").value == 1

    disks = [c for c in doc["checks"] if c["id"] == "disk_usage"]
    assert disks
    for check in disks:
        param = check["nodeid"].split("[", 1)[1][:-1]
        for e in check["evidence"]:
            labels = {"id": "disk_usage", "param": param, "name": e["name"], "unit": "%"}
            assert one(found, "opscheck_evidence", **labels).value == pytest.approx(e["value"])
            assert one(found, "opscheck_evidence_limit", **labels).value == e["limit"]

    stamp = one(found, "opscheck_run_timestamp_seconds", label="daily").value
    started = one(found, "opscheck_run_start_timestamp_seconds", label="daily").value
    assert before - 1 <= started <= stamp <= datetime.now(UTC).timestamp() + 1
    assert one(found, "opscheck_run_duration_seconds", label="daily").value >= 0
    assert one(found, "opscheck_run_exit_code", label="daily").value == 1


@pytest.mark.slow
def test_an_unwritable_textfile_is_said_and_changes_nothing(sandbox_factory, tmp_path):
    healthy = sandbox_factory()
    cfg = tmp_path / "c.toml"
    missing = tmp_path / "no-such-dir" / "opscheck.prom"
    cfg.write_text(healthy.config.read_text() + f'\n[reports]\ntextfile = "{missing}"\n')
    reports = tmp_path / "reports"
    proc = run_pytest(
        ["-m", "daily", "-k", STEADY, "--reports-dir", str(reports), "--ops-config", str(cfg)]
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    doc = load_report(reports)
    assert doc["exit_code"] == 0
    assert doc["textfile"]["path"] == str(missing)
    assert "No such file or directory" in doc["textfile"]["error"]
    assert f"textfile: {missing}: not written" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_path_with_label_and_duplicates(tmp_path):
    """`{label}` in a path; a non-numeric value has no gauge; a name recorded twice (a lower
    and an upper bound) is one series whose limit is the last one recorded."""
    assert metrics.textfile_path(str(tmp_path), "weekly") == tmp_path / "opscheck-weekly.prom"
    assert (
        metrics.textfile_path(f"{tmp_path}/x-{{label}}.prom", "daily") == tmp_path / "x-daily.prom"
    )
    doc = {
        "exit_code": 0,
        "checks": [
            {
                "id": "throughput_normal",
                "nodeid": "checks/daily/test_logs.py::test_throughput_normal",
                "cadence": "daily",
                "severity": "warning",
                "outcome": "skipped",
                "duration_s": 0.5,
                "evidence": [
                    {"name": "requests, last 24 h", "value": 100, "unit": "", "limit": 50},
                    {"name": "requests, last 24 h", "value": 100, "unit": "", "limit": 200},
                    {"name": "note", "value": "text", "unit": "", "limit": None},
                ],
            }
        ],
    }
    started = datetime(2026, 12, 1, 2, 0, 0, tzinfo=UTC)
    result = metrics.write(str(tmp_path), "daily", doc, started)
    found = samples(Path(result["path"]))
    assert "opscheck_check_success" not in found, "a skipped check has no verdict"
    assert one(found, "opscheck_check_outcome", outcome="skipped").value == 1
    assert one(found, "opscheck_evidence_limit", name="requests, last 24 h").value == 200
    assert [s.labels["name"] for s in found["opscheck_evidence"]] == ["requests, last 24 h"]
    assert one(found, "opscheck_run_duration_seconds").value > 0
    json.dumps(result)
