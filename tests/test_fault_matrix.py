"""`pytest -m daily` against a sandbox with each fault fails exactly the checks that
fault concerns; every other check still runs and passes, so one broken part never
hides the rest."""

from __future__ import annotations

import pytest

DAILY_IDS = {
    "health_endpoint_up",
    "health_components_healthy",
    "cpu_usage",
    "memory_usage",
    "disk_usage",
    "env_file_mode",
    "data_dir_modes",
    "backup_fresh",
}
HEALTH = {"health_endpoint_up", "health_components_healthy"}

MATRIX = {
    (): set(),
    ("down",): HEALTH,
    ("slow",): HEALTH,  # no answer within timeout_s: status and components unknown
    ("health-500",): HEALTH,
    ("degraded",): {"health_components_healthy"},
    ("cpu-hog",): {"cpu_usage"},
    ("env-mode",): {"env_file_mode"},
    ("dir-mode",): {"data_dir_modes"},
    ("stale-backup",): {"backup_fresh"},
    ("future-backup",): {"backup_fresh"},
    # Faults for weekly/monthly checks or checks still to come: the daily list passes.
    ("errors",): set(),
    ("corrupt-backup",): set(),
    ("missing-day",): set(),
    ("old-backups-kept",): set(),
    ("error-heavy-log",): set(),
}


@pytest.mark.slow
@pytest.mark.parametrize("faults", list(MATRIX), ids=lambda f: "-".join(f) or "healthy")
def test_daily_run_fails_exactly_the_concerned_checks(sandbox_factory, run_checks, faults):
    sb = sandbox_factory(*faults, timeout_s=1.0)
    run = run_checks(sb.config, "-m", "daily")
    outcomes = run.outcomes()
    assert set(outcomes) == DAILY_IDS, "every daily check ran and was reported"
    assert run.failed_ids() == MATRIX[faults], outcomes
    for entry in run.report["checks"]:
        if entry["outcome"] == "failed":
            assert entry["message"], f"{entry['id']} failed without a reason"
    assert run.exit_code == (1 if MATRIX[faults] else 0)
    assert run.report["exit_code"] == run.exit_code
