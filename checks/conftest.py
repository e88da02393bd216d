"""Fixtures shared by more than one cadence's checks."""

from dataclasses import dataclass
from datetime import datetime

import pytest

from opscheck.probes import ProbeError, packages


@dataclass(frozen=True)
class PendingUpdates:
    result: packages.Upgrade
    first_seen: dict[str, datetime]  # "package candidate" -> first day this suite saw it pending
    now: datetime


@pytest.fixture
def upgrade(cfg, state_dir) -> PendingUpdates:
    """What `apt-get -s dist-upgrade` would install; skips on a host without apt."""
    try:
        result = packages.simulate(cfg.packages.apt_config)
    except packages.Unsupported as exc:
        pytest.skip(str(exc))
    except ProbeError as exc:
        pytest.fail(f"no verdict: {exc}", pytrace=False)
    now = packages.now()
    return PendingUpdates(result, packages.remember(state_dir, result.security, now), now)
