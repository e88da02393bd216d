"""No flakes: the healthy sandbox gives an all-green daily run 20 times in a row.

One sandbox and one reports dir for all 20 runs, as cron uses them (the log summaries
in `<reports>/.state` carry from run to run). The config is the sandbox's own, with
the smallest honest timing: `[service] timeout_s = 2` (the replica answers /health in
milliseconds and a generation in about 50 ms at latency scale 0.02) and
`[hosts] cpu_sample_s = 1`. Every run must exit 0 with every daily check passed,
except `tls_certificate_valid`, which skips with its reason (the sandbox is HTTP).
`cpu_usage` measures the machine the suite runs on: on a machine busy with other work
it fails, rightly; CI runs the suite alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_fault_matrix import DAILY_IDS, bound_s, run_cadence

RUNS = 20
SKIPS = {"tls_certificate_valid": "the target is not HTTPS (http)"}


def _newest_report(reports: Path, seen: set[Path]) -> dict:
    new = sorted(p for p in (reports / "daily").glob("*.json") if p not in seen)
    assert len(new) == 1, f"one new JSON report per run, found {new}"
    seen.add(new[0])
    return json.loads(new[0].read_text())


@pytest.mark.slow
@pytest.mark.serial
def test_healthy_daily_is_green_20_times(sandbox_factory, tmp_path, monkeypatch):
    sb = sandbox_factory()
    reports, seen, bad = tmp_path / "reports", set(), []
    monkeypatch.setattr("tests.test_fault_matrix._json_report", lambda _: {})
    for n in range(1, RUNS + 1):
        run, seconds = run_cadence(sb.config, reports, "daily", bound_s("daily", 2.0))
        doc = _newest_report(reports, seen)
        outcomes = {c["id"]: (c["outcome"], c["message"]) for c in doc["checks"]}
        wrong = {
            i: o
            for i, o in outcomes.items()
            if o != ("passed", "") and not (i in SKIPS and o == ("skipped", SKIPS[i]))
        }
        if run.exit_code != 0 or wrong or set(outcomes) != DAILY_IDS:
            bad.append(f"run {n} ({seconds:.1f} s): exit {run.exit_code}, {wrong}")
    assert not bad, "\n".join(bad)
