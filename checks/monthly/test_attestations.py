"""Monthly: the guide's human reviews, each signed off within the month.

A review is recorded with `python3 -m opscheck attest ID --by ... --summary ...
--evidence ...`; a check fails when the newest record is older than 31 days plus
`attestation_grace_days` (7), or is missing or malformed (named). Days are calendar
days in `service.timezone` (UTC when unset).
"""

import pytest

from opscheck import attest


@pytest.mark.monthly
def test_dr_plan_reviewed(cfg, request, evidence):
    """재해 복구 계획 검토: a signed review of the DR plan in the last month."""
    attest.judge("dr_plan_reviewed", cfg, request.config.rootpath, evidence)


@pytest.mark.monthly
def test_backup_policy_reviewed(cfg, request, evidence):
    """백업 정책 평가: a signed review of the backup policy in the last month."""
    attest.judge("backup_policy_reviewed", cfg, request.config.rootpath, evidence)


@pytest.mark.monthly
def test_scaling_plan_reviewed(cfg, request, evidence):
    """스케일링 계획: a signed review of the scaling plan in the last month."""
    attest.judge("scaling_plan_reviewed", cfg, request.config.rootpath, evidence)


@pytest.mark.monthly
def test_infra_cost_reviewed(cfg, request, evidence):
    """인프라 비용 분석: a signed review of the infrastructure cost in the last month."""
    attest.judge("infra_cost_reviewed", cfg, request.config.rootpath, evidence)
