"""API key ages from the key registry: `{"anthropic": {"created": "2026-09-01"}, ...}`.

The registry holds dates only. A record that also holds a value (`key`, `value`,
`secret` ...) is read for its `created` date alone: no other field is kept, so no value
can reach evidence, a message or a log.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from opscheck.probes import ProbeError, noatime


@dataclass(frozen=True)
class KeyAge:
    name: str
    created: date | None
    age_days: float | None
    problem: str = ""  # why the age could not be told


def registry(path: str | Path, now: datetime | None = None) -> list[KeyAge]:
    """Every key of the registry with its age in days; ProbeError when it cannot be read."""
    path = Path(path)
    now = now or datetime.now(UTC)
    try:
        doc = json.loads(noatime.read_bytes(path))
    except FileNotFoundError:
        raise ProbeError(f"key registry {path}: no such file") from None
    except OSError as exc:
        raise ProbeError(f"key registry {path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        line = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ProbeError(f"key registry {path}: not valid JSON{line}") from None
    if not isinstance(doc, dict):
        raise ProbeError(f"key registry {path}: not an object of key names")
    if not doc:
        raise ProbeError(f"key registry {path}: lists no keys")
    return [_age(str(name), record, now) for name, record in doc.items()]


def _age(name: str, record: object, now: datetime) -> KeyAge:
    if not isinstance(record, dict) or "created" not in record:
        return KeyAge(name, None, None, "has no created date")
    created = _parse(record["created"])
    if created is None:
        return KeyAge(name, None, None, "created is not an ISO date")
    start = created if created.tzinfo else created.replace(tzinfo=UTC)
    days = (now - start).total_seconds() / 86400
    if days < -1:  # a day's slack for zones: a date written in Asia/Seoul is "tomorrow" in UTC
        return KeyAge(name, created.date(), days, f"created {created.date()} is in the future")
    return KeyAge(name, created.date(), float(max(math.floor(days), 0)))  # whole days


def _parse(value: object) -> datetime | None:
    """An ISO date or date-time (Python 3.11 reads both, and a trailing Z)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None
