"""Inline trend charts for the report rows: one small SVG per numeric evidence value.

The last runs' stored values (from the history) plus this run's, as a line with this
run's value as a dot, and the limit as a dashed red line, so a reader sees the trend
towards the limit without leaving the one self-contained HTML file. Nothing is fetched.
"""

from __future__ import annotations

from html import escape
from typing import Any

from opscheck.evidence import fmt

W, H, PAD = 120, 26, 3


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def spark(e: dict[str, Any], trend: dict[str, list[float]]) -> str:
    """The chart for one evidence value (its `name`'s stored values, then `value`);
    "" when the value is not a number."""
    now = _number(e.get("value"))
    if now is None:
        return ""
    values = [*trend.get(e["name"], []), now]
    limit = _number(e.get("limit"))
    lo = min([*values, limit if limit is not None else now])
    hi = max([*values, limit if limit is not None else now])
    span = (hi - lo) or 1.0

    def xy(i: int, v: float) -> tuple[float, float]:
        x = PAD + (W - 2 * PAD) * (i / (len(values) - 1) if len(values) > 1 else 1.0)
        return x, H - PAD - (H - 2 * PAD) * (v - lo) / span

    unit = e.get("unit") or ""
    label = f"{e['name']}: last {len(values)} runs, {fmt(min(values), unit)} to "
    label += f"{fmt(max(values), unit)}, now {fmt(now, unit)}"
    parts = [
        f'<svg class="opscheck-spark" xmlns="http://www.w3.org/2000/svg" width="{W}" '
        f'height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
    ]
    if limit is not None:
        y = xy(0, limit)[1]
        parts.append(
            f'<line class="limit" x1="0" y1="{y:.1f}" x2="{W}" y2="{y:.1f}" stroke="#d62728" '
            f'stroke-dasharray="3,2" stroke-width="1"><title>limit {escape(fmt(limit, unit))}'
            "</title></line>"
        )
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(values)))
    if len(values) > 1:
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="#1f77b4" stroke-width="1.2"/>'
        )
    x, y = xy(len(values) - 1, now)
    parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="#1f77b4"/></svg>')
    return " " + "".join(parts)
