"""`python -m opscheck.sandbox up|down|status`: the replica deployment's command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opscheck.sandbox import control
from opscheck.sandbox.faults import FAULTS


def _escape(text: str) -> str:
    """Help text as argparse wants it: it %-formats help strings, so a literal % is %%."""
    return text.replace("%", "%%")


def fault_list() -> str:
    """One line per fault, for the epilog of `up --help` (printed as written)."""
    width = max(len(name) for name in FAULTS)
    return "faults:\n" + "\n".join(f"  {f.name:<{width}}  {f.what}" for f in FAULTS.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opscheck.sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status"):
        extra = {"epilog": fault_list(), "formatter_class": argparse.RawDescriptionHelpFormatter}
        p = sub.add_parser(name, **(extra if name == "up" else {}))
        p.add_argument(
            "--dir",
            type=Path,
            default=control.DEFAULT_DIR,
            help=_escape(f"sandbox directory (default {control.DEFAULT_DIR})"),
        )
        if name == "up":
            p.add_argument(
                "--fault",
                action="append",
                default=[],
                metavar="NAME",
                choices=sorted(FAULTS),
                help="break one thing (repeatable; the faults are listed below)",
            )
            p.add_argument(
                "--fixed-delay-ms",
                type=float,
                default=0.0,
                help="every answer takes exactly this long, server side (load-test accuracy)",
            )
            p.add_argument(
                "--https",
                action="store_true",
                help="serve HTTPS (certificate from the sandbox's own CA, run/ca.pem)",
            )
            p.add_argument(
                "--latency-scale",
                type=float,
                default=1.0,
                help="multiply the replica's latency (1.0: generation takes 2-3 s)",
            )
            p.add_argument(
                "--error-share",
                type=float,
                default=0.05,
                help="share of API answers that fail under --fault errors",
            )
            p.add_argument(
                "--timeout",
                type=float,
                default=5.0,
                help="service.timeout_s written to the sandbox's config",
            )
            p.add_argument(
                "--requests-per-day", type=int, default=600, help="log volume of the generated days"
            )
            p.add_argument(
                "--replicas",
                type=int,
                default=2,
                help="replicas behind the sandbox's load balancer (1: one replica, no balancer)",
            )
    args = parser.parse_args(argv)
    if args.command == "up":
        opts = control.Options(
            faults=tuple(dict.fromkeys(args.fault)),
            latency_scale=args.latency_scale,
            error_share=args.error_share,
            timeout_s=args.timeout,
            requests_per_day=args.requests_per_day,
            https=args.https,
            fixed_delay_ms=args.fixed_delay_ms,
            replicas=max(1, args.replicas),
        )
        path = control.up(args.dir, opts)
        print(path)
    elif args.command == "down":
        stopped = control.down(args.dir.resolve())
        print("stopped " + ", ".join(stopped) if stopped else "nothing was running")
    else:
        print(control.status(args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
