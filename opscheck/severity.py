"""How loud a failure is, as the guide's alert manager defines it.

A failed (or errored) check is `critical` when it is marked `@pytest.mark.critical`, or
when a value it compared is past the alert threshold of its metric (`[alerts.thresholds]`:
cpu 80 %, memory 85 %, disk 90 %, error rate 5 %, response time 5000 ms); otherwise it is a
`warning`. A check that did not fail keeps its marked severity (what its failure is at least).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opscheck.config import AlertThresholds
from opscheck.evidence import fmt

# check id -> (its metric in [alerts.thresholds], the unit of the values compared with it)
ALERT_METRICS: dict[str, tuple[str, str]] = {
    "cpu_usage": ("cpu_percent", "%"),
    "memory_usage": ("memory_percent", "%"),
    "disk_usage": ("disk_percent", "%"),
    "error_rate": ("error_rate_percent", "%"),
    "avg_response_time": ("response_time_ms", "ms"),
    "p95_response_time": ("response_time_ms", "ms"),
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def classify(
    check_id: str,
    marked_critical: bool,
    failed: bool,
    evidence: Iterable[dict[str, Any]],
    thresholds: AlertThresholds,
) -> tuple[str, str]:
    """(severity, why): why is "" for a warning, else what made it critical."""
    if marked_critical:
        return "critical", "marked critical" if failed else ""
    if not failed or check_id not in ALERT_METRICS:
        return "warning", ""
    metric, unit = ALERT_METRICS[check_id]
    alert = getattr(thresholds, metric)
    for e in evidence:
        compared = _number(e.get("value")) and _number(e.get("limit"))
        if compared and e.get("unit") == unit and e["value"] > alert:
            return "critical", (
                f"{fmt(e['value'], unit)} is past the alert threshold {fmt(alert, unit)} "
                f"([alerts.thresholds] {metric})"
            )
    return "warning", ""
