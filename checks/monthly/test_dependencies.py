"""Monthly: the critical packages are no more than a patch release behind the index."""

import pytest

from opscheck.probes import ProbeError, dependencies, pypi


@pytest.fixture
def critical(cfg):
    """(pins, {name: newest final release}) for the critical packages pinned; setup
    errors when the index does not answer for one of them (never a pass)."""
    try:
        pins = dependencies.read_pins(cfg.paths.requirements)
    except ProbeError as exc:
        pytest.fail(f"no verdict: {exc}", pytrace=False)
    p, latest, unanswered = cfg.packages, {}, []
    for name in p.critical:
        if pins.get(name) is not None:
            try:
                latest[name] = pypi.latest_release(name, p.index_url, p.timeout_s)
            except ProbeError as exc:
                unanswered.append(str(exc))
    if unanswered:
        pytest.fail(f"no verdict: {'; '.join(unanswered)}", pytrace=False)
    return pins, latest


@pytest.mark.monthly
def test_outdated_critical_packages(critical, cfg, evidence):
    """의존성 패키지 업데이트 검토: fastapi, uvicorn, anthropic, langchain as pinned lag
    their newest final release by less than a minor version.

    A critical package not `==` pinned (or not in requirements.txt) fails: its deployed
    version is whatever the last build happened to resolve, which no one can review."""
    pins, latest = critical
    for name in cfg.packages.critical:
        pin = pins.get(name)
        if pin is None:
            loose = [u for u in pins.unpinned if dependencies.names(u.text, name)]
            how = f"{loose[0].text} is not pinned with ==" if loose else "it is not listed"
            evidence.breach(f"{name}: {how} in {pins.path}, so its deployed version is unknown")
            continue
        evidence.record(f"{name} pinned", pin.version, limit=f"latest {latest[name]}")
        try:
            behind = pypi.lag(pin.version, latest[name])
        except ValueError:
            evidence.breach(f"{name}: pinned version {pin.version} is not a PEP 440 version")
            continue
        if behind.kind:
            plural = "s" if behind.behind > 1 else ""
            evidence.breach(
                f"{name} is pinned at {pin.version}, latest is {latest[name]} "
                f"({behind.behind} {behind.kind} version{plural} behind)"
            )
    evidence.verdict()
