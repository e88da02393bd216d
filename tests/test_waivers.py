"""Waivers (issue 9) on real runs of small suites: a waived failure in every report and
exit 0, a pass stays a pass, an expired waiver fails saying since when, an unmatched
waiver reported, a malformed file one usage error naming the line and key."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from opscheck import waivers
from tests.conftest import run_pytest
from tests.test_plugin import html_data, make_suite, reports_of

CHECKS = """
@pytest.mark.daily
def test_fine(evidence):
    '''서비스 정상 실행 확인: a passing check.'''
    evidence.at_most("queue depth", 3, "jobs", 10)
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.parametrize("vol", ["/", "/data"])
def test_disk(vol, evidence):
    '''디스크 사용률 < 90%: per volume.'''
    evidence.at_most(f"{vol} used", 95, "%", 90)
    evidence.verdict()
"""

DATA_WAIVER = """
[[waiver]]
check = "disk"
param = "/data"
reason = "migrating to the new volume (OPS-12)"
owner = "kim"
expires = 2099-01-31
"""


def run(tmp_path: Path, waivers_text: str, checks: str = CHECKS):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": checks})
    (suite / "waivers.toml").write_text(waivers_text)
    proc = run_pytest(["-m", "daily"], cwd=suite)
    found = reports_of(suite, "daily", "json")
    doc = json.loads(found[0].read_text()) if found else {}
    return suite, proc, doc


def by_node(doc: dict) -> dict[str, dict]:
    return {c["nodeid"].split("::")[1]: c for c in doc["checks"]}


ONLY_DATA = CHECKS.replace('["/", "/data"]', '["/data"]')


def test_a_waived_failure_is_waived_in_every_report_and_exits_0(tmp_path):
    suite, proc, doc = run(tmp_path, DATA_WAIVER, ONLY_DATA)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 waived" in proc.stdout
    entry = by_node(doc)["test_disk[/data]"]
    assert entry["outcome"] == "waived"
    assert entry["message"] == (
        "waived until 2099-01-31 23:59:59+00:00 (owner kim): migrating to the new volume "
        "(OPS-12); the failure: /data used is 95 %, limit 90 %"
    )
    assert entry["waiver"]["owner"] == "kim" and entry["waiver"]["status"] == "applied"
    assert doc["exit_code"] == 0
    (xml,) = reports_of(suite, "daily", "xml")
    assert 'message="waived until 2099-01-31' in xml.read_text()
    (page,) = reports_of(suite, "daily", "html")
    rows = {
        t[0]["testId"]: " ".join(t[0]["resultsTableRow"])
        for t in html_data(page.read_text())["tests"].values()
    }
    row = rows["checks/daily/test_x.py::test_disk[/data]"]
    assert '<td class="col-result">XFailed</td>' in row, "pytest-html's filters know xfailed"
    assert '<i class="waiver">Waived until 2099-01-31' in row
    assert "migrating to the new volume (OPS-12)" in row


def test_the_unwaived_parameter_still_fails(tmp_path):
    _, proc, doc = run(tmp_path, DATA_WAIVER)
    assert proc.returncode == 1
    assert by_node(doc)["test_disk[/]"]["outcome"] == "failed"
    assert by_node(doc)["test_disk[/data]"]["outcome"] == "waived"


def test_a_passing_waived_check_stays_passed(tmp_path):
    text = DATA_WAIVER.replace('check = "disk"\nparam = "/data"', 'check = "fine"')
    _, proc, doc = run(tmp_path, text, ONLY_DATA.replace("95", "50"))
    assert proc.returncode == 0
    assert by_node(doc)["test_fine"]["outcome"] == "passed"
    assert [w["status"] for w in doc["waivers"]] == ["matched"]


def test_an_expired_waiver_fails_the_check_saying_since_when(tmp_path):
    text = DATA_WAIVER.replace("2099-01-31", "2026-01-31T18:00:00+09:00")
    _, proc, doc = run(tmp_path, text, ONLY_DATA)
    assert proc.returncode == 1
    entry = by_node(doc)["test_disk[/data]"]
    assert entry["outcome"] == "failed"
    assert entry["message"].startswith(
        "/data used is 95 %, limit 90 % [waiver expired: no longer waived since "
        "2026-01-31 18:00:00+09:00 ("
    )
    assert "owner kim: migrating to the new volume (OPS-12)]" in entry["message"]
    assert doc["waivers"][0]["status"] == "expired"
    assert "expired 2026-01-31 18:00:00+09:00" in proc.stdout


def test_a_waiver_matching_nothing_is_reported_not_failed(tmp_path):
    text = DATA_WAIVER.replace('check = "disk"', 'check = "disk_usge"')
    _, proc, doc = run(tmp_path, text, ONLY_DATA.replace("95", "50"))
    assert proc.returncode == 0
    assert "waiver disk_usge[/data]" in proc.stdout
    assert "matches no check collected in this run" in proc.stdout
    assert doc["waivers"][0]["status"] == "unmatched"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[[waiver]]\ncheck = 'x'\nreason = 'r'\nowner = 'o'\n",
            "line 1 ([[waiver]]): expires: missing",
        ),
        (
            "\n[[waiver]]\ncheck = 'x'\nreason = 'r'\nowner = 'o'\nexpires = 2026-12-31T10:00:00\n",
            "line 2 ([[waiver]]): expires: a date-time needs an offset (e.g. +09:00)",
        ),
        (
            "[[waiver]]\ncheck='x'\nreason='r'\nowner='o'\nexpires=2026-12-31\n\n"
            "[[waiver]]\ncheck='y'\nreason='r'\nowner='o'\nexpires=2026-12-31\nexpiry=1\n",
            "line 7 ([[waiver]]): unknown key 'expiry'",
        ),
        (
            "[[waiver]]\ncheck = 'x'\nreason = ''\nowner = 'o'\nexpires = 2026-12-31\n",
            "reason: must be a non-empty string",
        ),
        ("[[waiver]\n", "invalid TOML: "),
    ],
)
def test_malformed_waivers_are_one_usage_error(tmp_path, text, expected):
    suite, proc, _ = run(tmp_path, text, ONLY_DATA)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"ERROR: {suite / 'waivers.toml'}")
    assert expected in lines[0]
    assert not reports_of(suite, "daily", "json"), "nothing ran, no report reserved"


def test_a_date_lasts_to_the_end_of_the_day_in_the_service_time_zone(tmp_path):
    seoul = ZoneInfo("Asia/Seoul")
    (w,) = waivers.parse(DATA_WAIVER.replace("2099-01-31", "2026-12-31"), tmp_path, seoul)
    assert w.expires.tzinfo is seoul and w.expires.date() == date(2026, 12, 31)
    assert w.expires.astimezone(UTC) == datetime(2026, 12, 31, 14, 59, 59, 999999, tzinfo=UTC)


def test_a_configured_waivers_file_that_is_missing_is_a_usage_error(tmp_path):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": ONLY_DATA})
    conf = suite / "opscheck.toml"
    conf.write_text('[paths]\nwaivers = "nowhere.toml"\n')
    proc = run_pytest(["-m", "daily", "--ops-config", str(conf)], cwd=suite)
    assert proc.returncode == 4
    assert f"waivers file {suite / 'nowhere.toml'} (paths.waivers) does not exist" in proc.stderr
