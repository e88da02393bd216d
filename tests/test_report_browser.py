"""The HTML report in a real browser (issue 9): Debian's chromium, headless, opens the
report of a real run against the sandbox (degraded health, slow generations, plain HTTP
so the TLS check skips) and the test reads what a reader sees once pytest-html's script
has built the table: the summary counts, the failing row with its value and limit, the
skip reason in words."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from opscheck.evidence import fmt
from tests.test_checks_daily import DAILY

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHECKS = ["health_components_healthy", "p95_response_time", "tls_certificate_valid"]
CHECKS += ["health_endpoint_up"]


WAIVER = """
[[waiver]]
check = "health_components_healthy"
reason = "chroma move (OPS-7)"
owner = "kim"
expires = 2099-01-31
"""


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran (virtual time lets them finish)."""
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities decoded, spaces folded."""
    inline = re.sub(r"</?(?:b|i|span|a)\b[^>]*>", "", fragment)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def rows(dom: str) -> dict[str, str]:
    """Each row of the results table the script built, by check id, as visible text."""
    found = {}
    for block in re.findall(
        r'<tbody class="results-table-row [^"]*" id=[^>]*>.*?</tbody>', dom, re.S
    ):
        seen = text(block)
        m = re.search(r"\b(?:Failed|Passed|Skipped|Error|XFailed) (\w+)", seen)
        if m:
            found[m.group(1)] = seen
    return found


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="chromium is not installed here")
def test_a_reader_sees_the_summary_the_failing_value_and_the_skip_reason(
    sandbox_factory, run_checks, tmp_path
):
    sb = sandbox_factory("degraded", "slow-log")
    (sb.config.parent / "waivers.toml").write_text(WAIVER)
    run = run_checks(sb.config, *DAILY, "-k", " or ".join(f"test_{c}" for c in CHECKS))
    assert run.outcomes() == {
        "health_components_healthy": "waived",
        "p95_response_time": "failed",
        "tls_certificate_valid": "skipped",
        "health_endpoint_up": "passed",
    }, run.stdout
    (page,) = list(run.reports_dir.glob("daily/*.html"))
    dom = dump_dom(page, tmp_path / "chromium-profile")

    summary = re.search(r'<div id="opscheck-summary">.*?</ul></div></div>', dom, re.S)
    assert summary, "no summary at the top of the report"
    seen = text(summary.group(0))
    assert seen.startswith("1 failed, 1 waived, 1 skipped, 1 passed Failed (1) p95_response_time")
    assert "Waived (1) health_components_healthy: waived until 2099-01-31" in seen

    p95 = next(e for e in run.one("p95_response_time")["evidence"] if e["limit"] == 5000)
    value = f"{fmt(p95['value'], 'ms')} (limit 5000 ms)"
    table = rows(dom)
    assert set(table) == set(CHECKS), "the script built one row per check"
    assert table["p95_response_time"].startswith("Failed p95_response_time (critical: ")
    assert "past the alert threshold 5000 ms" in table["p95_response_time"]
    assert value in table["p95_response_time"], table["p95_response_time"]
    assert f"is {fmt(p95['value'], 'ms')}, limit 5000 ms" in seen, "the summary names it too"

    waived = table["health_components_healthy"]
    assert "Waived until 2099-01-31 23:59:59+00:00 (owner kim): chroma move (OPS-7)" in waived
    assert 'class="results-table-row xfailed"' in dom, "the waived row is shown, not filtered"

    skip = table["tls_certificate_valid"]
    assert skip.startswith("Skipped tls_certificate_valid · daily")
    assert "Skipped: the target is not HTTPS (http)." in skip
    assert "('/" not in dom and "Skipped: Skipped" not in dom, "no raw tuple anywhere"
