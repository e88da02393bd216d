"""Evidence: what a check measured, with unit and limit, kept for the report.

A check records every value it compared, passing or not, and fails once at the end
with every breach in plain words ("/ space used is 93.1 %, limit 90 %").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pytest

from opscheck.scrub import scrub


@dataclass(frozen=True)
class Evidence:
    name: str
    value: Any
    unit: str = ""
    limit: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        return f"{self.name} is {fmt(self.value, self.unit)}"


def fmt(value: Any, unit: str = "") -> str:
    """A value with its unit, rounded for a human: 93.1 %, 90 %, 0.0123 s."""
    if isinstance(value, float):
        if value.is_integer():
            value = int(value)
        elif abs(value) >= 100:
            value = f"{value:.0f}"
        else:
            value = f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return f"{value} {unit}" if unit else str(value)


class Recorder:
    """Collects a check's evidence and breaches; `verdict()` fails with all breaches."""

    def __init__(self) -> None:
        self.items: list[Evidence] = []
        self.breaches: list[str] = []
        self.attachments: list[str] = []  # HTML shown in the check's row of the report
        self.links: list[tuple[str, str]] = []  # (name, relative URL) in the Links column
        self.subject = ""  # the row's target ("replica 10.0.0.5"): leads the failure message

    def record(self, name: str, value: Any, unit: str = "", limit: Any = None) -> Evidence:
        if isinstance(value, str):
            value = scrub(value)
        item = Evidence(scrub(name), value, unit, limit)
        self.items.append(item)
        return item

    def at_most(self, name: str, value: float, unit: str, limit: float) -> bool:
        """Record `value` and note a breach when it is above `limit`."""
        item = self.record(name, value, unit, limit)
        if value > limit:
            self.breaches.append(f"{item.text()}, limit {fmt(limit, unit)}")
            return False
        return True

    def at_least(self, name: str, value: float, unit: str, limit: float) -> bool:
        """Record `value` and note a breach when it is below `limit`."""
        item = self.record(name, value, unit, limit)
        if value < limit:
            self.breaches.append(f"{item.text()}, minimum {fmt(limit, unit)}")
            return False
        return True

    def within(
        self,
        name: str,
        got: float | None,
        want: float | None,
        tolerance_percent: float,
        unit: str = "",
    ) -> bool:
        """Record `got` against `want` and note a breach when they differ by more than the
        tolerance (% of `want`) or either could not be counted."""
        self.record(name, got, unit, want)
        if got is None or want is None:
            missing = "restored" if got is None else "live"
            self.breaches.append(f"{name}: the {missing} value could not be counted")
            return False
        allowed = abs(want) * tolerance_percent / 100.0
        if abs(got - want) > allowed:
            tol = f" ± {fmt(tolerance_percent, '%')}" if tolerance_percent else ""
            self.breaches.append(f"{name}: restored {fmt(got, unit)}, live {fmt(want, unit)}{tol}")
            return False
        return True

    def expect(self, name: str, value: Any, expected: Any, ok: bool, why: str = "") -> bool:
        """Record a non-numeric comparison (a mode, a status); `why` explains a breach."""
        self.record(name, value, "", expected)
        if not ok:
            self.breaches.append(scrub(why or f"{name} is {value}, expected {expected}"))
        return ok

    def attach(self, html: str) -> None:
        """Show an HTML piece (a table, a chart from opscheck.render) in the report row."""
        self.attachments.append(html)

    def link(self, name: str, url: str) -> None:
        """A link from the check's row, e.g. to Locust's own report beside it."""
        self.links.append((name, url))

    def breach(self, message: str) -> None:
        """Note a breach that has no single measured value (unreachable, unreadable)."""
        self.breaches.append(scrub(message))

    def verdict(self) -> None:
        """Fail the check, naming every breach, if there was any."""
        if self.breaches:
            lead = f"{scrub(self.subject)}: " if self.subject else ""
            pytest.fail(lead + "; ".join(self.breaches), pytrace=False)
