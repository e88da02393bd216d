"""Small HTML pieces for the report: tables and an inline SVG chart (one file, no assets).

Checks attach them through `evidence.attach(...)`; they appear in the check's row of
the HTML report. Everything is escaped; nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from opscheck.evidence import fmt
from opscheck.probes.logs.summary import Hour, Summary

STYLE = "border-collapse:collapse;font-size:12px;margin:4px 0"
CELL = "border:1px solid #ccc;padding:2px 6px"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f'<th style="{CELL}">{escape(str(h))}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="{CELL}">{escape(_cell(c))}</td>' for c in row) + "</tr>"
        for row in rows
    )
    return f'<div><b>{escape(title)}</b><table style="{STYLE}"><tr>{head}</tr>{body}</table></div>'


def _cell(value: object) -> str:
    return "-" if value is None else fmt(value) if isinstance(value, float) else str(value)


def hourly(summary: Summary, keys: list[str], title: str) -> str:
    """Requests (bars) and p95 (line) per clock hour, oldest first, with its table."""
    keys = list(reversed(keys))
    hours = [summary.hours.get(k, Hour()) for k in keys]
    requests = [h.requests for h in hours]
    p95 = [h.latency.quantile_ms(0.95) for h in hours]
    return chart(title, keys, requests, p95) + table(
        title,
        ["hour (UTC)", "requests", "5xx", "p95 ms"],
        [(k, h.requests, h.errors_5xx, p) for k, h, p in zip(keys, hours, p95, strict=True)],
    )


def chart(title: str, labels: list[str], bars: list[int], line: list[float | None]) -> str:
    """An inline SVG: bars for counts (left scale), a line for p95 ms (right scale)."""
    w, h, pad = 720, 160, 30
    n = max(1, len(labels))
    step = (w - 2 * pad) / n
    top_bar = max(bars or [0]) or 1
    top_line = max([v for v in line if v is not None] or [0]) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h + 20}" '
        f'role="img" aria-label="{escape(title)}">'
    ]
    for i, b in enumerate(bars):
        bh = (h - pad) * b / top_bar
        parts.append(
            f'<rect x="{pad + i * step:.1f}" y="{h - bh:.1f}" width="{step * 0.8:.1f}" '
            f'height="{bh:.1f}" fill="#9ecae1"><title>{escape(labels[i])}: {b} '
            "requests</title></rect>"
        )
    points = [
        f"{pad + (i + 0.4) * step:.1f},{h - (h - pad) * v / top_line:.1f}"
        for i, v in enumerate(line)
        if v is not None
    ]
    if points:
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="#d62728" '
            'stroke-width="1.5"/>'
        )
    parts.append(
        f'<text x="{pad}" y="12" font-size="11">{escape(title)}: bars = requests '
        f"(max {top_bar}), red line = p95 (max {top_line:.0f} ms)</text>"
    )
    parts.append(f'<text x="{pad}" y="{h + 14}" font-size="10">{escape(labels[0])}</text>')
    parts.append(
        f'<text x="{w - pad}" y="{h + 14}" font-size="10" text-anchor="end">'
        f"{escape(labels[-1])}</text>"
    )
    parts.append("</svg>")
    return "<div>" + "".join(parts) + "</div>"


def endpoints(window: Hour, title: str) -> str:
    """Requests per endpoint, with mean and p95 where the access log timed them."""
    total = sum(window.endpoints.values()) or 1
    rows = []
    for ep, n in window.endpoints.most_common(20):
        hist = window.endpoint_latency.get(ep)
        rows.append(
            (
                ep,
                n,
                f"{100 * n / total:.1f} %",
                hist.mean_ms if hist else None,
                hist.quantile_ms(0.95) if hist else None,
            )
        )
    rows.sort(key=lambda r: -(r[4] or 0))
    return table(title, ["endpoint", "requests", "share", "mean ms", "p95 ms"], rows)


def signatures(last: dict[str, int], before: dict[str, int], title: str) -> str:
    rows = sorted(last.items(), key=lambda t: -t[1])[:10]
    return table(
        title,
        ["signature", "last 24 h", "previous 7 days"],
        [(sig, n, before.get(sig, 0)) for sig, n in rows],
    )


def sentence(text: str) -> str:
    """A reason as one sentence: a capital first letter and a closing full stop."""
    text = " ".join(text.split())
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def skip_reason(message: str) -> str:
    """A skipped row's reason in words ("Skipped: the target is not HTTPS (http).")."""
    text = " ".join((message or "no reason given").split())
    return f"Skipped: {text}" + ("" if text[-1] in ".!?" else ".")


def _named(entry: dict) -> str:
    """`disk_usage [/]` from a JSON entry: the id and its parameter, if any."""
    nodeid = entry["nodeid"]
    param = nodeid[nodeid.index("[") :] if nodeid.endswith("]") and "[" in nodeid else ""
    return entry["id"] + (f" {param}" if param else "")


def _limits(entry: dict) -> str:
    """The numeric evidence as 'name: value (limit L)' (for a failure with no message)."""
    shown = []
    for e in entry.get("evidence", []):
        limit, value = e.get("limit"), e.get("value")
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (limit, value)):
            shown.append(f"{e['name']}: {fmt(value, e['unit'])} (limit {fmt(limit, e['unit'])})")
    return "; ".join(shown)


def _waived_style(count: int) -> str:
    """A waived failure is pytest's "xfailed" underneath (the table's filters know only
    pytest's outcomes): its result cell and filter read "Waived" (no check uses xfail)."""
    return (
        "<style>tbody.xfailed td.col-result,span.xfailed{font-size:0}"
        'tbody.xfailed td.col-result::before{content:"Waived";font-size:12px}'
        "tbody.xfailed td.col-result::after{font-size:12px}"
        f'span.xfailed::before{{content:"{count} Waived,";font-size:12px}}</style>'
    )


def summary(entries: Sequence[dict], warnings: Sequence[str] = ()) -> str:
    """The report's opening: failed checks (critical first) with value and limit, then
    errors, waived checks and the run's warnings, then the other outcomes as counts."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["outcome"]] = counts.get(e["outcome"], 0) + 1
    order = ("failed", "error", "waived", "skipped", "not run", "passed")
    line = ", ".join(f"{counts[o]} {o}" for o in order if counts.get(o))
    failed = sorted(
        (e for e in entries if e["outcome"] == "failed"), key=lambda e: e["severity"] != "critical"
    )
    counted = escape(line or "no checks ran")
    parts = [
        _waived_style(counts.get("waived", 0)),
        f'<div id="opscheck-summary"><p class="opscheck-counts"><b>{counted}</b></p>',
    ]
    parts.append(_list("Failed", "opscheck-failed", [_failed_item(e) for e in failed]))
    errors = [e for e in entries if e["outcome"] == "error"]
    parts.append(
        _list("Errors (no verdict)", "opscheck-errors", [_plain(e, e["message"]) for e in errors])
    )
    waived = [_plain(e, e["message"]) for e in entries if e["outcome"] == "waived"]
    parts.append(_list("Waived", "opscheck-waived", waived))
    parts.append(_list("Warnings", "opscheck-warnings", [escape(w) for w in warnings]))
    parts.append("</div>")
    return "".join(parts)


def _failed_item(e: dict) -> str:
    tag = " (critical)" if e["severity"] == "critical" else ""
    detail = e["message"] or _limits(e) or "failed (no message)"
    return f"<b>{escape(_named(e))}</b>{tag}: {escape(detail)}"


def _plain(e: dict, text: str) -> str:
    return f"<b>{escape(_named(e))}</b>: {escape(text)}"


def _list(title: str, css: str, items: list[str]) -> str:
    if not items:
        return ""
    lis = "".join(f"<li>{i}</li>" for i in items)
    return f'<div class="{css}"><b>{escape(title)} ({len(items)})</b><ul>{lis}</ul></div>'
