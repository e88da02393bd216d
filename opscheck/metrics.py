"""The run as a node_exporter textfile, so existing monitoring can graph and alert on it.

`[reports] textfile`: a directory (the file is `<dir>/opscheck-<label>.prom`, one per
label, so the daily and weekly runs never overwrite each other) or a `.prom` path
(`{label}` in it is replaced). Written from a fresh registry with prometheus_client's
`write_to_textfile` (a temp file and a rename: node_exporter never reads half a file).
Metric names and labels are in docs/contracts.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from opscheck.outcomes import OUTCOMES
from opscheck.scrub import scrub

SUCCESS = {"passed": 1, "waived": 1, "failed": 0, "error": 0}  # skipped, not run: no verdict
CHECK_LABELS = ("id", "param", "cadence", "label")
EVIDENCE_LABELS = (*CHECK_LABELS, "name", "unit")


def textfile_path(setting: str, label: str) -> Path:
    """Where the textfile goes: `<dir>/opscheck-<label>.prom`, or the path given."""
    path = Path(setting.replace("{label}", label)).expanduser()
    return path / f"opscheck-{label}.prom" if path.is_dir() else path


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _param(nodeid: str) -> str:
    return nodeid[nodeid.index("[") + 1 : -1] if nodeid.endswith("]") and "[" in nodeid else ""


def registry_for(label: str, doc: dict[str, Any], started: datetime) -> CollectorRegistry:
    """A fresh registry holding the run's metrics."""
    reg = CollectorRegistry()
    g = {
        "success": Gauge(
            "opscheck_check_success",
            "1 if the check passed (or was waived), 0 if it failed or errored",
            CHECK_LABELS,
            registry=reg,
        ),
        "outcome": Gauge(
            "opscheck_check_outcome",
            "1 for the check's outcome in this run, 0 for the others",
            (*CHECK_LABELS, "outcome"),
            registry=reg,
        ),
        "critical": Gauge(
            "opscheck_check_critical",
            "1 if the check's failure is critical, else 0",
            CHECK_LABELS,
            registry=reg,
        ),
        "duration": Gauge(
            "opscheck_check_duration_seconds", "time the check took", CHECK_LABELS, registry=reg
        ),
        "value": Gauge(
            "opscheck_evidence", "a value the check measured", EVIDENCE_LABELS, registry=reg
        ),
        "limit": Gauge(
            "opscheck_evidence_limit",
            "the limit the value was compared with",
            EVIDENCE_LABELS,
            registry=reg,
        ),
    }
    for check in doc.get("checks", []):
        _check(g, label, check)
    _run(reg, label, doc, started)
    return reg


def _check(g: dict[str, Gauge], label: str, check: dict[str, Any]) -> None:
    key = (check["id"], scrub(_param(check.get("nodeid", ""))), check.get("cadence", ""), label)
    outcome = check.get("outcome", "")
    if outcome in SUCCESS:
        g["success"].labels(*key).set(SUCCESS[outcome])
    for name in OUTCOMES:
        g["outcome"].labels(*key, name).set(1 if name == outcome else 0)
    g["critical"].labels(*key).set(1 if check.get("severity") == "critical" else 0)
    g["duration"].labels(*key).set(float(check.get("duration_s", 0.0)))
    for e in check.get("evidence", []):
        if not _number(e.get("value")):
            continue
        ev = (*key, scrub(str(e.get("name", ""))), str(e.get("unit", "")))
        g["value"].labels(*ev).set(float(e["value"]))
        if _number(e.get("limit")):
            g["limit"].labels(*ev).set(float(e["limit"]))


def _run(reg: CollectorRegistry, label: str, doc: dict[str, Any], started: datetime) -> None:
    finished = datetime.now(UTC)  # the reports are written: the run is over
    run = {
        "opscheck_run_timestamp_seconds": ("when the run finished (Unix time)", finished),
        "opscheck_run_start_timestamp_seconds": ("when the run started (Unix time)", started),
    }
    for name, (help_text, when) in run.items():
        Gauge(name, help_text, ("label",), registry=reg).labels(label).set(when.timestamp())
    Gauge(
        "opscheck_run_duration_seconds", "how long the run took", ("label",), registry=reg
    ).labels(label).set(max(0.0, (finished - started).total_seconds()))
    code = doc.get("exit_code")
    if isinstance(code, int):
        Gauge(
            "opscheck_run_exit_code", "the run's exit code (pytest's)", ("label",), registry=reg
        ).labels(label).set(code)
    counts = Gauge(
        "opscheck_run_checks", "checks of the run by outcome", ("label", "outcome"), registry=reg
    )
    for name in OUTCOMES:
        n = sum(c.get("outcome") == name for c in doc.get("checks", []))
        counts.labels(label, name).set(n)


def write(setting: str, label: str, doc: dict[str, Any], started: datetime) -> dict[str, Any]:
    """Write the textfile; {"path": ...}, with "error" when it could not be written."""
    path = textfile_path(setting, label)
    try:
        write_to_textfile(str(path), registry_for(label, doc, started))
    except OSError as exc:
        return {"path": str(path), "error": f"{path}: not written: {exc.strerror or exc}"}
    return {"path": str(path)}
