"""`python3 -m opscheck history CHECK_ID [--days N]`: a check's outcomes and values over time."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opscheck import config as cfgmod
from opscheck.evidence import fmt
from opscheck.history import Database, HistoryError
from opscheck.scrub import scrub

SUITE = Path(__file__).resolve().parents[2]
_DEF = re.compile(r"^\s*def test_(\w+)\s*\(", re.M)


def known_ids(root: Path = SUITE) -> set[str]:
    """The check ids defined under checks/ and loadtests/."""
    ids: set[str] = set()
    for folder in ("checks", "loadtests"):
        for path in (root / folder).rglob("test_*.py"):
            ids.update(_DEF.findall(path.read_text(encoding="utf-8", errors="replace")))
    return ids


def rows(db: Database, check_id: str, since: str) -> list[list[str]]:
    """One row per stored result: started, host, label, parameter, outcome, values."""
    from opscheck.history.store import param_of

    results = db.call("reading", "outcomes", check_id, since)
    values: dict[tuple[str, str], list[str]] = {}
    for p in db.call("reading", "points", [check_id], since):
        text = f"{p.name} {fmt(p.value, p.unit)}"
        if p.limit is not None:
            text += f" (limit {fmt(p.limit, p.unit)})"
        values.setdefault((p.started, p.nodeid), []).append(text)
    return [
        [
            r.started,
            r.host,
            r.label,
            param_of(r.nodeid) or "-",
            r.outcome,
            "; ".join(values.get((r.started, r.nodeid), [])) or "-",
        ]
        for r in results
    ]


def table(headers: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers) - 1)]
    lines = []
    for r in [headers, *body]:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)] + [r[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def main(check_id: str, days: int, ops_config: str | None, reports_dir: str | None) -> int:
    """Print the table; 0 when there is something to show, 1 when the history has nothing,
    2 on an unknown id, a config error or a history that cannot be read."""
    try:
        overrides = {"reports": {"dir": reports_dir}} if reports_dir else {}
        loaded = cfgmod.load(cfgmod.find_path(ops_config, Path.cwd()), overrides)
    except cfgmod.ConfigError as exc:
        print(scrub(str(exc)), file=sys.stderr)
        return 2
    db = Database.from_config(loaded.config, SUITE)
    since_ts = datetime.now(UTC) - timedelta(days=days)
    since = since_ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        body = rows(db, check_id, since)
    except HistoryError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if not body:
        if check_id not in known_ids():
            print(f"unknown check id {check_id!r}: no check in the suite has it", file=sys.stderr)
            return 2
        print(
            f"{check_id}: no stored results in the last {days} days in the history {db.where()}",
            file=sys.stderr,
        )
        return 1
    print(f"{check_id}: {len(body)} results since {since} (history {db.where()})")
    print(table(["started (UTC)", "host", "label", "parameter", "outcome", "values"], body))
    return 0
