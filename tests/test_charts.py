"""Inline trend charts in the HTML report rows: the stored runs plus this one, limit drawn."""

from __future__ import annotations

import html
import re

from opscheck.charts import spark
from tests.historydb import config
from tests.test_plugin import html_data

MEMORY = ["checks/daily/test_host.py", "-k", "memory_usage"]


def _evidence_cell(run) -> str:
    (page,) = list(run.reports_dir.glob("*/*.html"))
    data = html_data(page.read_text())
    cells = [c for rows in data["tests"].values() for r in rows for c in r["resultsTableRow"]]
    (cell,) = [c for c in cells if 'class="col-evidence"' in c]
    return cell


def test_a_row_charts_the_last_runs_with_the_limit(run_checks, tmp_path, history_url):
    cfg = config(tmp_path, history_url)
    runs = [run_checks(cfg, *MEMORY) for _ in range(3)]
    cell = _evidence_cell(runs[-1])
    assert cell.count("<svg") == 1
    assert 'aria-label="memory used: last 3 runs' in cell
    assert "<title>limit 85 %</title>" in cell
    points = re.search(r'<polyline points="([^"]+)"', cell).group(1).split()
    assert len(points) == 3
    first = _evidence_cell(runs[0])  # nothing stored yet: this run's value alone
    assert 'aria-label="memory used: last 1 runs' in first and "<polyline" not in first


def test_no_history_no_chart_and_the_report_still_whole(run_checks, tmp_path):
    (tmp_path / "a-file").write_text("")
    run = run_checks(config(tmp_path, f"sqlite:///{tmp_path}/a-file/h.sqlite"), *MEMORY)
    assert run.exit_code == 0
    cell = _evidence_cell(run)
    assert "memory used:" in cell and "last 1 runs" in cell  # this run's value, as a dot


def test_spark_draws_numbers_only_and_escapes_names():
    e = {"name": "<b>x</b>", "value": 5.0, "unit": "%", "limit": 10}
    svg = spark(e, {"<b>x</b>": [1.0, 2.0, 12.0]})
    assert "<b>" not in svg and html.escape("<b>x</b>") in svg
    assert "last 4 runs, 1 % to 12 %, now 5 %" in svg and 'class="limit"' in svg
    assert spark({"name": "mode", "value": "0600", "unit": "", "limit": "0600"}, {}) == ""
    assert spark({"name": "flag", "value": True, "unit": "", "limit": None}, {}) == ""
    flat = spark({"name": "n", "value": 3, "unit": "", "limit": None}, {"n": [3.0]})
    assert "limit" not in flat and "<polyline" in flat
