"""`python -m opscheck demo`: the daily checklist against a fresh sandbox, then its report.

Starts the sandbox replica, runs `pytest -m daily` with the sandbox's config from
the suite's directory, stops the sandbox, and prints the HTML report's path last.
`python -m opscheck cache-fix`: the guide's cache clean-up (opscheck/cachefix.py),
a dry run unless `--apply`.
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
    config = control.up(sandbox_dir, control.Options(faults=tuple(faults), replicas=2))
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
    c = sub.add_parser(
        "cache-fix",
        help="give keys their ttl_policy TTL and delete idle keys (dry run unless --apply)",
    )
    c.add_argument("--ops-config", metavar="PATH", help="config file (as pytest's option)")
    mode = c.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list the changes (the default)")
    mode.add_argument("--apply", action="store_true", help="make the changes")
    _add_archive(sub)
    _add_attest(sub)
    h = sub.add_parser("history", help="a check's outcomes and values over time")
    h.add_argument("check_id", metavar="CHECK_ID")
    h.add_argument("--days", type=int, default=30, help="how far back (default 30)")
    h.add_argument("--ops-config", metavar="PATH", help="config file (as for pytest)")
    h.add_argument("--reports-dir", metavar="DIR", help="reports.dir (as for pytest)")
    args = parser.parse_args(argv)
    if args.command == "cache-fix":
        from opscheck import cachefix

        return cachefix.run(args.ops_config, args.apply, Path.cwd(), SUITE)
    if args.command == "archive":
        return _archive(args)
    if args.command == "attest":
        return _attest(args)
    if args.command == "history":
        from opscheck.history import cli

        return cli.main(args.check_id, args.days, args.ops_config, args.reports_dir)
    return demo(args.dir, args.fault, args.marker)


def _load_config(path: str | None):
    """The config as a run would read it, or None after printing the one-line reason."""
    from opscheck import config as cfgmod

    try:
        return cfgmod.load(cfgmod.find_path(path, Path.cwd())).config
    except cfgmod.ConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return None


def _add_archive(sub) -> None:
    a = sub.add_parser("archive", help="the audit archive of reports (manifest.jsonl)")
    verbs = a.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("verify", help="check the manifest's hash chain and every report")
    v.add_argument("--ops-config", metavar="PATH", help="config file (for reports.dir)")
    v.add_argument("--reports-dir", type=Path, metavar="DIR", help="overrides reports.dir")
    d = verbs.add_parser("adopt", help="list reports no entry lists (from before the archive)")
    d.add_argument("--ops-config", metavar="PATH", help="config file (for reports.dir)")
    d.add_argument("--reports-dir", type=Path, metavar="DIR", help="overrides reports.dir")


def _archive(args) -> int:
    from opscheck import archive

    conf = _load_config(args.ops_config)
    if conf is None:
        return 4
    reports = (args.reports_dir or archive.reports_dir(conf.reports.dir, SUITE)).resolve()
    if args.verb == "adopt":
        return archive.adopt_command(reports, conf.reports.archive_key)
    return archive.verify_command(reports, conf.reports.archive_public_key)


def _add_attest(sub) -> None:
    a = sub.add_parser("attest", help="record a human review (an attestation) for a check")
    a.add_argument("id", help="the check id, e.g. dr_plan_reviewed")
    a.add_argument("--by", required=True, help="who reviewed")
    a.add_argument("--summary", required=True, help="what was reviewed and found")
    a.add_argument("--evidence", required=True, help="a link or path to the record")
    a.add_argument("--ops-config", metavar="PATH", help="config file (for attestations_dir)")


def _attest(args) -> int:
    from opscheck import attest

    conf = _load_config(args.ops_config)
    if conf is None:
        return 4
    return attest.command(conf, SUITE, args.id, args.by, args.summary, args.evidence)


if __name__ == "__main__":
    sys.exit(main())
