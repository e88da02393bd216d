"""Quarterly: the audit record. The report archive is intact and holds a daily report for
every day of the quarter so far; the quarter's human reviews are attested.

The archive is `<reports.dir>/manifest.jsonl` (docs/contracts.md); days are calendar days
in `service.timezone` (UTC when unset), the quarter the one holding yesterday (on the
first day of a quarter, the whole quarter before). Attestations may be 92 days old plus
`attestation_grace_days`.
"""

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from opscheck import archive, archivesig, attest


@pytest.fixture
def archive_verdict(cfg, request):
    """`archive verify` over the run's reports dir (this run, in progress, excepted)."""
    reports = archive.reports_dir(cfg.reports.dir, request.config.rootpath)
    try:
        return reports, archive.verify(reports, cfg.reports.archive_public_key)
    except (archive.ArchiveError, archivesig.SignatureError) as exc:
        pytest.fail(f"no verdict: {exc}", pytrace=False)


@pytest.mark.quarterly
def test_audit_archive_complete(archive_verdict, cfg, evidence):
    """감사 기록: the archive's hash chain and files are intact; no day lacks a daily report."""
    reports, verdict = archive_verdict
    zone = ZoneInfo(cfg.service.timezone) if cfg.service.timezone else UTC
    first, last = archive.quarter_so_far(attest.today(cfg))
    evidence.record("manifest", str(reports / archive.MANIFEST))
    evidence.record("archive problems", len(verdict.problems), "", 0)
    evidence.record("entries intact", len(verdict.entries))
    if verdict.problems:
        evidence.breach(f"archive broken, first at: {verdict.problems[0]}")
    missing = archive.days_without_daily(verdict.entries, first, last, zone)
    span = f"{first} to {last}"
    if evidence.at_most(f"days without a daily report, {span}", len(missing), "days", 0):
        return evidence.verdict()
    shown = ", ".join(str(d) for d in missing[:10]) + (" ..." if len(missing) > 10 else "")
    evidence.breach(f"no daily report on {shown}")
    evidence.verdict()


@pytest.mark.quarterly
def test_full_audit_attested(cfg, request, evidence):
    """전체 시스템 감사: a signed full system audit in the last quarter."""
    attest.judge("full_audit_attested", cfg, request.config.rootpath, evidence)


@pytest.mark.quarterly
def test_architecture_review_attested(cfg, request, evidence):
    """아키텍처 검토: a signed architecture review in the last quarter."""
    attest.judge("architecture_review_attested", cfg, request.config.rootpath, evidence)


@pytest.mark.quarterly
def test_capacity_plan_attested(cfg, request, evidence):
    """용량 계획 수립: a signed capacity plan in the last quarter."""
    attest.judge("capacity_plan_attested", cfg, request.config.rootpath, evidence)
