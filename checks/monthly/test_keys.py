"""Monthly: every API key in the registry is younger than `key_max_age_days`.

The registry holds dates only; the probe keeps a record's `created` field alone, so a
key's value (were one written there by mistake) is never read into the report.
"""

import pytest

from opscheck.probes import ProbeError, keys


@pytest.fixture
def key_ages(cfg):
    """Every key's age; setup errors (no verdict) when the registry or a record's date
    cannot be read, or a date lies in the future."""
    try:
        ages = keys.registry(cfg.paths.key_registry)
    except ProbeError as exc:
        pytest.fail(f"no verdict: {exc}", pytrace=False)
    bad = [f"key {k.name}: {k.problem}" for k in ages if k.problem]
    if bad:
        pytest.fail(f"no verdict: {cfg.paths.key_registry}: {'; '.join(bad)}", pytrace=False)
    return ages


@pytest.mark.monthly
def test_key_rotation_age(key_ages, cfg, evidence):
    """API 키 로테이션: each key's `created` date in the registry is within the limit."""
    limit = cfg.thresholds.key_max_age_days
    for k in key_ages:
        evidence.at_most(f"key {k.name} age", round(k.age_days, 1), "days", limit)
    evidence.verdict()
