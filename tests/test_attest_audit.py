"""Attestations and the quarterly audit record (issue 9): the `attest` command, the
monthly and quarterly attestation checks both ways (fresh, old, missing, malformed),
`audit_archive_complete` on a real archive (complete, a missing day, a tampered report)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from opscheck import archive
from tests.conftest import REPO, load_report, run_pytest
from tests.test_archive import fake_run

TODAY = datetime.now(UTC).date()


def conf(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "opscheck.toml"
    path.write_text(f'[paths]\nattestations_dir = "{tmp_path / "att"}"\n{extra}')
    return path


def attest(config: Path, check_id: str, *more: str) -> subprocess.CompletedProcess[str]:
    args = ["--by", "Kim Ops", "--summary", "DR plan read through; RTO still 4 h"]
    args += ["--evidence", "https://wiki.example/dr-2026-12", *more]
    return subprocess.run(
        [sys.executable, "-m", "opscheck", "attest", check_id, *args, "--ops-config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def record(tmp_path: Path, check_id: str, day: date, body: str | None = None) -> Path:
    folder = tmp_path / "att" / check_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day}.toml"
    path.write_text(
        body
        if body is not None
        else f'by = "Lee"\ndate = {day}\nsummary = "reviewed"\nevidence = "ticket OPS-1"\n'
    )
    return path


def checks(tmp_path: Path, config: Path, marker: str, *args: str):
    reports = tmp_path / "reports"
    proc = run_pytest(
        ["-m", marker, "--ops-config", str(config), "--reports-dir", str(reports), *args]
    )
    doc = load_report(reports)
    return proc, {c["id"]: c for c in doc["checks"]}


def test_attest_writes_a_record_and_never_overwrites(tmp_path):
    config = conf(tmp_path)
    proc = attest(config, "dr_plan_reviewed")
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "att" / "dr_plan_reviewed" / f"{TODAY}.toml"
    assert proc.stdout.strip() == str(path)
    import tomllib

    doc = tomllib.loads(path.read_text())
    assert doc["by"] == "Kim Ops" and doc["date"] == TODAY
    assert doc["evidence"] == "https://wiki.example/dr-2026-12"
    before = path.read_bytes()
    again = attest(config, "dr_plan_reviewed")
    assert again.returncode == 1
    assert again.stderr.strip() == f"{path} exists; an attestation is never overwritten"
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".tmp-*"))


def test_attest_refuses_an_unknown_id(tmp_path):
    proc = attest(conf(tmp_path), "dr_plan_reviewd")
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "unknown attestation id 'dr_plan_reviewd'; one of: dr_plan_reviewed"
    )
    assert not (tmp_path / "att").exists()


def test_monthly_attestations_both_ways(tmp_path):
    config = conf(tmp_path)
    assert attest(config, "dr_plan_reviewed").returncode == 0
    record(tmp_path, "backup_policy_reviewed", TODAY - timedelta(days=38))
    record(tmp_path, "scaling_plan_reviewed", TODAY - timedelta(days=39))
    record(tmp_path, "infra_cost_reviewed", TODAY - timedelta(days=2), body='by = "Lee"\n')
    record(tmp_path, "infra_cost_reviewed", TODAY - timedelta(days=90))  # older, valid
    proc, found = checks(tmp_path, config, "monthly", "-k", "reviewed")
    assert proc.returncode == 1
    assert found["dr_plan_reviewed"]["outcome"] == "passed"
    assert found["backup_policy_reviewed"]["outcome"] == "passed", "31 days + 7 grace"
    assert found["scaling_plan_reviewed"]["outcome"] == "failed"
    assert (
        found["scaling_plan_reviewed"]["message"] == "newest record's age is 39 days, limit 38 days"
    )
    infra = found["infra_cost_reviewed"]
    assert infra["outcome"] == "failed"
    day = TODAY - timedelta(days=2)
    assert infra["message"] == (
        f"{tmp_path}/att/infra_cost_reviewed/{day}.toml: malformed record: date, summary, "
        "evidence missing or empty"
    )


def test_quarterly_attestations_missing_and_fresh(tmp_path):
    config = conf(tmp_path)
    record(tmp_path, "full_audit_attested", TODAY - timedelta(days=99))
    record(tmp_path, "architecture_review_attested", TODAY - timedelta(days=100))
    _proc, found = checks(tmp_path, config, "quarterly", "-k", "attested")
    assert found["full_audit_attested"]["outcome"] == "passed"
    assert found["architecture_review_attested"]["message"] == (
        "newest record's age is 100 days, limit 99 days"
    )
    assert found["capacity_plan_attested"]["message"] == (
        f"no attestation recorded ({tmp_path}/att/capacity_plan_attested does not exist)"
    )


def daily_archive(reports: Path, first: date, last: date, skip: date | None = None) -> None:
    day = first
    while day <= last:
        if day != skip:
            fake_run(reports, "daily", day.strftime("%Y%m%dT020000Z"), body=str(day))
        day += timedelta(days=1)


def audit_run(tmp_path: Path, reports: Path):
    proc = run_pytest(
        [
            "-m",
            "quarterly",
            "-k",
            "audit_archive",
            "--ops-config",
            str(conf(tmp_path)),
            "--reports-dir",
            str(reports),
        ]
    )
    found = sorted(reports.glob("quarterly/*.json"))
    doc = json.loads(found[-1].read_text())
    (entry,) = doc["checks"]
    return proc, entry


FIRST, LAST = archive.quarter_so_far(TODAY)


def test_audit_archive_complete_green_on_a_complete_archive(tmp_path):
    reports = tmp_path / "reports"
    daily_archive(reports, FIRST, LAST)
    fake_run(reports, "weekly", FIRST.strftime("%Y%m%dT030000Z"))
    proc, entry = audit_run(tmp_path, reports)
    assert entry["outcome"] == "passed", (entry, proc.stdout)
    # and the quarterly run itself was archived: the chain still verifies
    assert archive.verify(reports).intact


def test_audit_archive_complete_red_on_a_missing_day(tmp_path):
    reports = tmp_path / "reports"
    gap = FIRST + timedelta(days=min(3, (LAST - FIRST).days))
    daily_archive(reports, FIRST, LAST, skip=gap)
    _, entry = audit_run(tmp_path, reports)
    assert entry["outcome"] == "failed"
    assert (
        f"days without a daily report, {FIRST} to {LAST} is 1 days, limit 0 days"
        in entry["message"]
    )
    assert f"no daily report on {gap}" in entry["message"]


def test_audit_archive_complete_red_on_a_tampered_report(tmp_path):
    reports = tmp_path / "reports"
    daily_archive(reports, FIRST, LAST)
    victim = reports / "daily" / FIRST.strftime("%Y%m%dT020000Z.json")
    victim.write_text(victim.read_text().replace("finished", "fine"))
    _, entry = audit_run(tmp_path, reports)
    assert entry["outcome"] == "failed"
    rel = victim.relative_to(reports)
    assert entry["message"].startswith(f"archive broken, first at: {rel}: altered"), entry
    assert f"no daily report on {FIRST}" in entry["message"], "a tampered day does not count"


def test_quarter_so_far():
    assert archive.quarter_so_far(date(2027, 1, 1)) == (date(2026, 10, 1), date(2026, 12, 31))
    assert archive.quarter_so_far(date(2026, 12, 1)) == (date(2026, 10, 1), date(2026, 11, 30))
    assert archive.quarter_so_far(date(2026, 4, 2)) == (date(2026, 4, 1), date(2026, 4, 1))
