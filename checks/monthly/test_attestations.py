"""Monthly: the guide's human reviews, each signed off within the month.

A review is recorded with `python3 -m opscheck attest ID --by ... --summary ...
--evidence ...`; a check fails when the newest record is older than 31 days plus
`attestation_grace_days`, or is missing or malformed (named).
"""

import pytest

from opscheck import attest


def check_attested(check_id, cfg, root, evidence):
    """The newest record's age against the cadence's days plus the grace."""
    now = attest.today(cfg)
    found = attest.newest(attest.folder(cfg, root, check_id), now)
    if found.problem:
        evidence.breach(found.problem)
    else:
        limit = attest.CADENCE_DAYS[attest.cadence_of(check_id)]
        limit += cfg.thresholds.attestation_grace_days
        evidence.record("newest record", str(found.path))
        evidence.at_most("newest record's age", (now - found.day).days, "days", limit)
    evidence.verdict()


@pytest.mark.monthly
def test_dr_plan_reviewed(cfg, request, evidence):
    """재해 복구 계획 검토: a signed review of the DR plan in the last month."""
    check_attested("dr_plan_reviewed", cfg, request.config.rootpath, evidence)


@pytest.mark.monthly
def test_backup_policy_reviewed(cfg, request, evidence):
    """백업 정책 평가: a signed review of the backup policy in the last month."""
    check_attested("backup_policy_reviewed", cfg, request.config.rootpath, evidence)


@pytest.mark.monthly
def test_scaling_plan_reviewed(cfg, request, evidence):
    """스케일링 계획: a signed review of the scaling plan in the last month."""
    check_attested("scaling_plan_reviewed", cfg, request.config.rootpath, evidence)


@pytest.mark.monthly
def test_infra_cost_reviewed(cfg, request, evidence):
    """인프라 비용 분석: a signed review of the infrastructure cost in the last month."""
    check_attested("infra_cost_reviewed", cfg, request.config.rootpath, evidence)
