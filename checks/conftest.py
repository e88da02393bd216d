"""Fixtures shared by more than one cadence's checks."""

from dataclasses import dataclass
from datetime import datetime

import pytest

from opscheck.probes import ProbeError, packages
from opscheck.probes.host import LocalHost, host_state


@dataclass(frozen=True)
class PendingUpdates:
    upgrade: packages.Upgrade | None
    first_seen: dict[str, datetime]  # "package candidate" -> first day this suite saw it pending
    now: datetime
    failure: str = ""  # a remote host could not be read: its check fails with this

    @property
    def result(self) -> packages.Upgrade:
        """The simulated upgrade; a remote host's read failure fails the check here."""
        if self.upgrade is None:
            raise ProbeError(self.failure)
        return self.upgrade


@pytest.fixture
def upgrade(ops_host, cfg, state_dir) -> PendingUpdates:
    """What `apt-get -s dist-upgrade` would install on the host; skips on a host without
    apt. This machine's failure is no verdict (an error, as before hosts existed); a remote
    host's fails its row, as every other host check of an unreachable host does. First-seen
    dates are kept per host (`host_state`)."""
    try:
        result = packages.simulate_host(ops_host, cfg.packages.apt_config)
    except packages.Unsupported as exc:
        pytest.skip(str(exc))
    except ProbeError as exc:
        if isinstance(ops_host, LocalHost):
            pytest.fail(f"no verdict: {exc}", pytrace=False)
        return PendingUpdates(None, {}, packages.now(), str(exc))
    now = packages.now()
    seen = packages.remember(host_state(state_dir, ops_host), result.security, now)
    return PendingUpdates(result, seen, now)
