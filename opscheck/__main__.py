"""`python -m opscheck demo`: the daily checklist against a fresh sandbox, then its report.

Starts the sandbox replica, runs `pytest -m daily` with the sandbox's config from
the suite's directory, stops the sandbox, and prints the HTML report's path last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from opscheck.sandbox import control

SUITE = Path(__file__).resolve().parents[1]


def demo(sandbox_dir: Path, faults: list[str], marker: str) -> int:
    if not (SUITE / "pytest.ini").is_file():
        print(f"the checks live in a checkout; {SUITE} has no pytest.ini", file=sys.stderr)
        return 4
    print(f"starting the sandbox in {sandbox_dir} ...", flush=True)
    config = control.up(sandbox_dir, control.Options(faults=tuple(faults)))
    try:
        cmd = [sys.executable, "-m", "pytest", "-m", marker, "--ops-config", str(config)]
        print("$ " + " ".join(cmd[2:]), flush=True)
        code = subprocess.run(cmd, cwd=SUITE, stdin=subprocess.DEVNULL).returncode
    finally:
        control.down(sandbox_dir)
    report = _newest_report(marker)
    if report is None:
        print("no report was written", file=sys.stderr)
        return code or 3
    print(f"\nexit code {code}; the report (open it in a browser):\n{report}")
    return code


def _newest_report(marker: str) -> Path | None:
    from opscheck.report import label_for

    folder = SUITE / "reports" / label_for(marker)
    found = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    doc = json.loads(found[-1].read_text())
    return found[-1].with_name(doc.get("reports", {}).get("html", found[-1].stem + ".html"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opscheck", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run a checklist against a fresh sandbox replica")
    d.add_argument("--dir", type=Path, default=control.DEFAULT_DIR, help="sandbox directory")
    d.add_argument("--fault", action="append", default=[], help="break one thing (repeatable)")
    d.add_argument("-m", dest="marker", default="daily", help="which checklist (default daily)")
    h = sub.add_parser("history", help="a check's outcomes and values over time")
    h.add_argument("check_id", metavar="CHECK_ID")
    h.add_argument("--days", type=int, default=30, help="how far back (default 30)")
    h.add_argument("--ops-config", metavar="PATH", help="config file (as for pytest)")
    h.add_argument("--reports-dir", metavar="DIR", help="reports.dir (as for pytest)")
    args = parser.parse_args(argv)
    if args.command == "history":
        from opscheck.history import cli

        return cli.main(args.check_id, args.days, args.ops_config, args.reports_dir)
    return demo(args.dir, args.fault, args.marker)


if __name__ == "__main__":
    sys.exit(main())
