"""Quarterly: a disaster-recovery drill was done, and done in time, this quarter."""

import pytest

from opscheck.probes import backups
from opscheck.probes import history as hist


@pytest.mark.quarterly
def test_dr_drill_performed(history, cfg, evidence):
    """재해 복구 훈련: a restore_drill that passed within rto_hours is recorded this quarter."""
    now = backups.now()
    start = hist.quarter_start(now, backups.zone(cfg.service.timezone))
    rto_s = cfg.thresholds.rto_hours * 3600
    drills = hist.drills(history, start, now)
    good = [
        d for d in drills if d.outcome == "passed" and d.seconds is not None and d.seconds <= rto_s
    ]
    evidence.record(f"restore drills recorded since {start:%Y-%m-%d}", len(drills), "drills")
    for d in drills[-5:]:
        took = "no time stored" if d.seconds is None else f"{d.seconds:.0f} s"
        evidence.record(f"drill {hist.stamp(d.started)}", f"{d.outcome}, {took}")
    if good:
        evidence.record("newest good drill", hist.stamp(good[-1].started))
        evidence.at_most("newest good drill: restore time", good[-1].seconds, "s", rto_s)
    else:
        seen = (
            f"{len(drills)} drills recorded, none passed within it" if drills else "none recorded"
        )
        evidence.breach(
            f"no restore_drill passed within rto_hours ({cfg.thresholds.rto_hours:g} h) since "
            f"{start:%Y-%m-%d} in the history ({history.where()}): {seen}"
        )
    evidence.verdict()
