"""Weekly: no known vulnerability in the service's pins, and every pin was looked up.

pip-audit offline marks every pin "could not be audited" and still says "No known
vulnerabilities found" with exit code 0. Here a pin that was not looked up (or a line
that pins nothing) makes the check error: a scan that did not happen is no verdict.
"""

import pytest

from opscheck.probes import ProbeError, dependencies


@pytest.fixture
def audit(cfg, evidence):
    """The pins looked up (pip-audit, or the `osv_dir` mirror); setup errors when any
    was not, naming each, after recording what the rest showed."""
    try:
        pins = dependencies.read_pins(cfg.paths.requirements)
        if cfg.paths.osv_dir:
            result = dependencies.osv_mirror(pins, cfg.paths.osv_dir)
        else:
            p = cfg.packages
            result = dependencies.pip_audit(
                pins, p.audit_service, p.osv_url, p.timeout_s, cfg.paths.scratch_dir
            )
    except ProbeError as exc:
        pytest.fail(f"no verdict: {exc}", pytrace=False)
    blind = [f"{u.text} (line {u.line}): {u.why}" for u in pins.unpinned]
    blind += [f"{pin}: {why}" for pin, why in result.not_audited.items()]
    evidence.record("source", result.source)
    evidence.record("pins looked up", len(result.audited), "pins", len(pins.pins))
    if blind:
        found = "; ".join(f.text() for f in result.findings)
        also = f"; and found: {found}" if found else ""
        pytest.fail(f"no verdict: not audited: {'; '.join(blind)}{also}", pytrace=False)
    return result


@pytest.mark.weekly
def test_dependency_vulnerabilities(audit, cfg, evidence):
    """의존성 보안 스캔 실행: no pin of requirements.txt has a known advisory."""
    waived = set(cfg.packages.waived_advisories)
    for f in audit.findings:
        if f.names() & waived:
            evidence.record(f"waived: {f.package} {f.version}", f.text())
            continue
        evidence.record(f"{f.package} {f.version}", f.text(), limit="no known advisory")
        evidence.breach(f.text())
    evidence.verdict()
