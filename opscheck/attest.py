"""Attestations: a person's signed-off review, one TOML file per review and day.

`<attestations_dir>/<id>/<YYYY-mm-dd>.toml` holds `by`, `date`, `summary`, `evidence`
(and `recorded`, the UTC time it was written). The date is today in `service.timezone`
(UTC when unset). A record is never overwritten: it is written to a temp file and
hard-linked to its name, which fails if the name exists.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from opscheck.config import Config

MONTHLY = (
    "dr_plan_reviewed",
    "backup_policy_reviewed",
    "scaling_plan_reviewed",
    "infra_cost_reviewed",
)
QUARTERLY = ("full_audit_attested", "architecture_review_attested", "capacity_plan_attested")
CADENCE_DAYS = {"monthly": 31, "quarterly": 92}
KEYS = ("by", "date", "summary", "evidence")
_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.toml$")


def cadence_of(check_id: str) -> str:
    return "monthly" if check_id in MONTHLY else "quarterly"


def today(conf: Config) -> date:
    """Today in `service.timezone` (UTC when unset): the day a reviewer signs on."""
    zone = ZoneInfo(conf.service.timezone) if conf.service.timezone else UTC
    return datetime.now(zone).date()


def folder(conf: Config, root: Path, check_id: str) -> Path:
    base = Path(conf.paths.attestations_dir).expanduser()
    return (base if base.is_absolute() else root / base) / check_id


def _toml(by: str, day: date, summary: str, evidence: str) -> str:
    recorded = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"by = {json.dumps(by, ensure_ascii=False)}",
        f"date = {day.isoformat()}",
        f"summary = {json.dumps(summary, ensure_ascii=False)}",
        f"evidence = {json.dumps(evidence, ensure_ascii=False)}",
        f"recorded = {recorded}",
    ]
    return "\n".join(lines) + "\n"


def write(where: Path, by: str, day: date, summary: str, evidence: str) -> Path:
    """Write the record for `day`; FileExistsError when one is there already."""
    where.mkdir(parents=True, exist_ok=True)
    target = where / f"{day.isoformat()}.toml"
    fd, tmp = tempfile.mkstemp(dir=where, prefix=".tmp-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_toml(by, day, summary, evidence))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.link(tmp, target)  # atomic, and never over an existing record
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def command(conf: Config, root: Path, check_id: str, by: str, summary: str, evidence: str) -> int:
    """`python3 -m opscheck attest ID ...`: 0 written, 2 bad arguments, 1 not written."""
    known = (*MONTHLY, *QUARTERLY)
    if check_id not in known:
        print(f"unknown attestation id {check_id!r}; one of: {', '.join(known)}", file=sys.stderr)
        return 2
    for name, value in (("--by", by), ("--summary", summary), ("--evidence", evidence)):
        if not value.strip():
            print(f"{name} must not be empty", file=sys.stderr)
            return 2
    day = today(conf)
    try:
        path = write(folder(conf, root, check_id), by, day, summary, evidence)
    except FileExistsError:
        where = folder(conf, root, check_id) / f"{day.isoformat()}.toml"
        print(f"{where} exists; an attestation is never overwritten", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"attestation not written: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


@dataclass(frozen=True)
class Newest:
    """The newest record of an item: its path and date, or the problem with it."""

    path: Path | None
    day: date | None
    problem: str = ""


def newest(where: Path, now: date) -> Newest:
    """The newest dated record in `where`, read and checked."""
    if not where.is_dir():
        return Newest(None, None, f"no attestation recorded ({where} does not exist)")
    try:
        names = sorted((m.group(1), p) for p in where.iterdir() if (m := _NAME.match(p.name)))
    except OSError as exc:
        return Newest(None, None, f"cannot list {where}: {exc.strerror or exc}")
    if not names:
        return Newest(None, None, f"no attestation recorded in {where}")
    stem, path = names[-1]
    try:
        day = date.fromisoformat(stem)
    except ValueError:
        return Newest(path, None, f"{path}: the file name is not a date")
    problem = _problem(path, day, now)
    return Newest(path, day, problem)


def _problem(path: Path, day: date, now: date) -> str:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return f"{path}: unreadable record: {exc}"
    missing = [k for k in KEYS if not str(doc.get(k, "")).strip()]
    if missing:
        return f"{path}: malformed record: {', '.join(missing)} missing or empty"
    if doc["date"] != day:
        return f"{path}: malformed record: date {doc['date']} differs from its file name"
    if day > now:
        return f"{path}: dated {day}, after today ({now})"
    return ""


def judge(check_id: str, conf: Config, root: Path, evidence) -> None:
    """The newest record's age against the cadence's days plus the grace; a missing or
    malformed newest record is a breach naming it."""
    now = today(conf)
    found = newest(folder(conf, root, check_id), now)
    if found.problem or found.day is None:
        evidence.breach(found.problem)
    else:
        limit = CADENCE_DAYS[cadence_of(check_id)] + conf.thresholds.attestation_grace_days
        evidence.record("newest record", str(found.path))
        evidence.at_most("newest record's age", (now - found.day).days, "days", limit)
    evidence.verdict()
