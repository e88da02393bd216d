"""What a run writes: the HTML, JUnit XML and JSON triple, never overwriting.

`<reports.dir>/<label>/<UTC stamp>.{html,xml,json}`; pytest-html writes the HTML,
pytest's junitxml the XML, this module the JSON (schema in docs/contracts.md) and
the check columns of the HTML table.
"""

from __future__ import annotations

import html
import json
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opscheck import __version__, charts, lifecycle, runlock, severity, writers
from opscheck.config import Loaded
from opscheck.evidence import Evidence, fmt
from opscheck.outcomes import CADENCES
from opscheck.scrub import redact_url, scrub

CHECK_ROOTS = ("checks", "loadtests")


def label_for(markexpr: str) -> str:
    """The marker expression made filename-safe: 'daily or weekly' -> 'daily-or-weekly'."""
    label = re.sub(r"[^a-z0-9]+", "-", markexpr.lower()).strip("-")
    return label or "all"


@dataclass(frozen=True)
class ReportPaths:
    stem: Path  # <dir>/<label>/<stamp>, without suffix

    @property
    def html(self) -> Path:
        return self.stem.with_name(self.stem.name + ".html")

    @property
    def xml(self) -> Path:
        return self.stem.with_name(self.stem.name + ".xml")

    @property
    def json(self) -> Path:
        return self.stem.with_name(self.stem.name + ".json")


def reserve(directory: Path, now: datetime) -> ReportPaths:
    """Claim a stem no earlier run used, by creating its JSON file exclusively."""
    directory.mkdir(parents=True, exist_ok=True)
    base = now.strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 10_000):
        paths = ReportPaths(directory / (base if n == 1 else f"{base}-{n}"))
        if paths.html.exists() or paths.xml.exists():
            continue
        try:
            fd = os.open(paths.json, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"suite_version": __version__, "status": "running"}, f)
        except OSError:
            paths.json.unlink(missing_ok=True)  # (a full disk: no empty report left)
            raise
        return paths
    raise pytest.UsageError(f"no free report name left in {directory} for {base}")


@dataclass(frozen=True)
class CheckMeta:
    id: str
    guide_line: str
    cadence: str
    severity: str


def is_check(item: pytest.Item) -> bool:
    try:
        rel = item.path.relative_to(item.config.rootpath)
    except ValueError:
        return False
    return bool(rel.parts) and rel.parts[0] in CHECK_ROOTS


def gate_only(item: pytest.Item) -> bool:
    """A check of the deploy gate alone: `predeploy` and no cadence."""
    cadences = [m.name for m in item.iter_markers() if m.name in CADENCES]
    return not cadences and item.get_closest_marker("predeploy") is not None


META = pytest.StashKey[CheckMeta]()


def check_meta(item: pytest.Item) -> CheckMeta:
    """A check's id, guide line (its docstring's first line), cadence and severity
    (computed once per item)."""
    meta = item.stash.get(META, None)
    if meta is None:
        meta = item.stash[META] = _check_meta(item)
    return meta


def _check_meta(item: pytest.Item) -> CheckMeta:
    name = getattr(item, "originalname", item.name)
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
    guide = first.split(": ", 1)[0]  # "디스크 사용률 < 90%: what is measured" -> the guide's line
    cadences = [m.name for m in item.iter_markers() if m.name in CADENCES]
    critical = item.get_closest_marker("critical") is not None
    return CheckMeta(
        id=name.removeprefix("test_"),
        guide_line=guide,
        cadence=cadences[0] if cadences else "predeploy" if gate_only(item) else "",
        severity="critical" if critical else "warning",
    )


WORKER_ATTRS = ("node", "worker_id", "item_index", "testrun_uid")


@dataclass
class Running:
    """A check started and not finished: where it is, and its last report so far."""

    location: tuple[str, int | None, str]
    report: pytest.TestReport | None = None


@dataclass
class Entry:
    """One row of the JSON report."""

    id: str
    nodeid: str
    cadence: str
    severity: str
    guide_line: str
    outcome: str = ""  # "" until measured (a call, or a setup that failed or skipped)
    duration_s: float = 0.0
    message: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    waiver: dict[str, Any] | None = None  # the waiver that waived its failure
    severity_reason: str = ""  # what made a failure critical ("" for a warning)

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["duration_s"] = round(self.duration_s, 4)
        if d["waiver"] is None:
            del d["waiver"]
        if not d["severity_reason"]:  # only on a critical failure
            del d["severity_reason"]
        return d


def _message(report: pytest.TestReport) -> str:
    """The failure or skip reason in one readable piece, without pytest's prefixes."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, lineno, reason)
        return scrub(str(longrepr[2]).removeprefix("Skipped: "))
    crash = getattr(longrepr, "reprcrash", None)
    # str(), not report.longreprtext: under xdist that starts with the worker's line
    text = crash.message if crash is not None else str(longrepr or "")
    for prefix in ("Failed: ", "Skipped: "):
        text = text.removeprefix(prefix)
    return scrub(text.strip())


def _utc(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


class RunState:
    """The run's config, report paths and results; registered as a plugin for one run."""

    def __init__(
        self,
        config: pytest.Config,
        loaded: Loaded,
        paths: ReportPaths,
        label: str,
        lock: runlock.RunLock | None = None,
    ):
        self.pytest_config = config
        self.loaded = loaded
        self.paths = paths
        self.label = label
        self.lock = lock
        self.started = datetime.now(UTC)
        self.host = socket.gethostname()
        self.entries: dict[str, Entry] = {}
        self.running: dict[str, Running] = {}  # checks started, not finished (one per worker)
        self.collected: dict[str, CheckMeta] = {}  # the selected checks, as workers collected
        self.guard = writers.Guard(paths.html, paths.xml)
        self.problems: list[str] = []  # what could not be written or removed
        self.doc: dict[str, Any] = {}
        self.session: pytest.Session | None = None
        self.waivers: Any = None  # opscheck.waivers.Waivers, when there is a waivers file

    @classmethod
    def start(cls, config: pytest.Config, loaded: Loaded) -> RunState:
        """Check the reports dir and the state dir, take the label's lock, reserve names:
        each problem is one usage error before any check runs."""
        label = label_for(config.option.markexpr or "")
        reports = Path(loaded.config.reports.dir).expanduser()
        if not reports.is_absolute():
            reports = config.rootpath / reports
        try:
            (reports / label).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise pytest.UsageError(
                f"cannot write reports in {reports}: {exc.strerror or exc}"
            ) from None
        lock = runlock.acquire(reports / label / ".lock", label)
        try:
            check_state_dir(reports / ".state")
            paths = reserve(reports / label, datetime.now(UTC))
        except OSError as exc:
            lock.release()
            raise pytest.UsageError(
                f"cannot write reports in {reports}: {exc.strerror or exc}"
            ) from None
        except pytest.UsageError:
            lock.release()
            raise
        return cls(config, loaded, paths, label, lock)

    def metadata(self) -> dict[str, str]:
        """The facts the report header shows (no secrets: URLs are redacted)."""
        return {
            "Target": redact_url(self.loaded.config.service.base_url),
            "Config": str(self.loaded.path or "built-in defaults"),
            "Config sha256": self.loaded.sha256 or "-",
            "Host": self.host,
            "Suite version": __version__,
            "Label": self.label,
        }

    def header_lines(self) -> list[str]:
        m = self.metadata()
        return [
            f"target {m['Target']}, config {m['Config']} (sha256 {m['Config sha256'][:12]})",
            f"reports {self.paths.stem}.{{html,xml,json}}",
        ]

    def annotate(self, item: pytest.Item, report: pytest.TestReport, ev: list[Evidence]) -> None:
        """Put the check's id, guide line and evidence on its report, for every output."""
        meta = check_meta(item)
        report.opscheck_meta = meta  # type: ignore[attr-defined]
        report.opscheck_evidence = [e.as_dict() for e in ev]  # type: ignore[attr-defined]
        report.opscheck_severity = severity.classify(  # type: ignore[attr-defined]
            meta.id,
            meta.severity == "critical",
            report.failed,
            report.opscheck_evidence,  # type: ignore[attr-defined]
            self.loaded.config.alerts.thresholds,
        )
        if report.when == "call" or (report.when == "setup" and not report.passed):
            # JUnit XML takes properties from the item, when its teardown is reported.
            props = [
                ("check_id", meta.id),
                ("guide_line", meta.guide_line),
                ("severity", report.opscheck_severity[0]),  # type: ignore[attr-defined]
            ]
            props += [("evidence", _evidence_text(e.as_dict())) for e in ev]
            item.user_properties.extend(props)

    def _entry(self, nodeid: str, meta: CheckMeta) -> Entry:
        entry = self.entries.get(nodeid)
        if entry is None:
            entry = Entry(meta.id, nodeid, meta.cadence, meta.severity, meta.guide_line)
            self.entries[nodeid] = entry
        return entry

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Every row is built from its reports alone (under xdist they come from workers)."""
        meta = getattr(report, "opscheck_meta", None)
        if not isinstance(meta, CheckMeta):
            return
        entry = self._entry(report.nodeid, meta)
        if report.nodeid in self.running:
            self.running[report.nodeid].report = report
        entry.duration_s += report.duration
        evidence = getattr(report, "opscheck_evidence", None)
        if evidence:
            entry.evidence = evidence
        if report.failed and hasattr(report, "opscheck_severity"):
            entry.severity, entry.severity_reason = report.opscheck_severity
        interrupted = getattr(report, "opscheck_interrupted", "")
        if interrupted:
            entry.outcome, entry.message = "error", f"interrupted ({interrupted})"
        elif report.when == "call":
            waiver = getattr(report, "opscheck_waiver", None)
            if waiver is not None:
                entry.outcome, entry.message = "waived", report.wasxfail
                entry.waiver = waiver
            elif report.failed:
                entry.outcome, entry.message = "failed", _message(report)
            elif report.skipped:
                entry.outcome, entry.message = "skipped", _message(report)
            else:
                entry.outcome = "passed"
        elif report.failed and entry.outcome != "failed":
            entry.outcome = "error"
            entry.message = f"{report.when} error: {_message(report)}"
        elif report.skipped and report.when == "setup":
            entry.outcome, entry.message = "skipped", _message(report)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        self.guard.install(session.config)

    def stop(self, signal_name: str) -> None:
        """On a signal: the session stops after this check, should a check swallow the
        raise (`lifecycle` raises `Interrupted` in the check itself)."""
        if self.session is not None:
            self.session.shouldstop = f"interrupted ({signal_name})"

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self.running[nodeid] = Running(location)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.running.pop(nodeid, None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Before the HTML and XML writers: stop what runs, remove scratch, settle every
        check's outcome, write the JSON."""
        self.problems += [f"scratch not removed: {p}" for p in lifecycle.cleanup()]
        signal_name = lifecycle.interrupted()
        if signal_name:
            self._close_interrupted(session, signal_name)
        self._settle(session, signal_name)
        self.doc = self._document(exitstatus, signal_name)
        self._write_json()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """After every writer: what could not be written goes into the JSON and stderr."""
        self.problems += self.guard.problems
        if not self.doc:  # interrupted before the session began: no check ran
            signal_name = lifecycle.interrupted()
            code = pytest.ExitCode.INTERRUPTED if signal_name else pytest.ExitCode.INTERNAL_ERROR
            lifecycle.cleanup()
            self.doc = self._document(int(code), signal_name)
            self._write_json()
        if self.problems and self.doc:
            self.doc["unwritten"] = list(self.problems)
            self._write_json()
        writers.say(self.problems)
        if self.lock is not None:
            self.lock.release()

    def _write_json(self) -> None:
        fallback = {
            "suite_version": __version__,
            "label": self.label,
            "status": "unwritten",
            "exit_code": self.doc.get("exit_code"),
            "unwritten": list(dict.fromkeys([*self.problems, *self.guard.problems])),
        }
        problem = writers.write_json(self.paths.json, self.doc, fallback)
        if problem and problem not in self.problems:
            self.problems.append(problem)

    def _document(self, exitstatus: int, signal_name: str) -> dict[str, Any]:
        return {
            "suite_version": __version__,
            "label": self.label,
            "status": "interrupted" if signal_name else "finished",
            "interrupted_by": signal_name or None,
            "started": _utc(self.started),
            "finished": _utc(datetime.now(UTC)),
            "host": self.host,
            "exit_code": int(exitstatus),
            "target": redact_url(self.loaded.config.service.base_url),
            "config": {
                "path": str(self.loaded.path) if self.loaded.path else None,
                "sha256": self.loaded.sha256,
            },
            "reports": {"html": self.paths.html.name, "xml": self.paths.xml.name},
            "checks": [e.as_dict() for e in self._in_order()],
            **({"waivers": self.waivers.summary()} if self.waivers else {}),
        }

    def _close_interrupted(self, session: pytest.Session, signal_name: str) -> None:
        """Each check a signal cut short (one, or one per xdist worker) gets its report,
        an error, in every output."""
        for nodeid, running in list(self.running.items()):
            self._close_one(session, nodeid, running, signal_name)
        self.running.clear()

    def _close_one(
        self, session: pytest.Session, nodeid: str, running: Running, signal_name: str
    ) -> None:
        item = next((i for i in session.items if i.nodeid == nodeid), None)
        if item is not None:
            meta = check_meta(item) if META in item.stash else None
        else:
            meta = self.collected.get(nodeid) or getattr(running.report, "opscheck_meta", None)
        entry = self.entries.get(nodeid)
        if meta is None or (entry is not None and entry.outcome):
            return
        self._entry(nodeid, meta)
        last = running.report  # under xdist: the worker's last report of this check
        report = pytest.TestReport(
            nodeid,
            item.location if item is not None else running.location,
            {k: 1 for k in item.keywords} if item is not None else {},
            "failed",
            f"interrupted ({signal_name})",
            "teardown",
            user_properties=(
                item.user_properties if item is not None else getattr(last, "user_properties", [])
            ),
        )
        for attr in WORKER_ATTRS:  # junitxml pairs a worker's reports by these
            if hasattr(last, attr):
                setattr(report, attr, getattr(last, attr))
        report.opscheck_interrupted = signal_name  # type: ignore[attr-defined]
        report.opscheck_meta = meta  # type: ignore[attr-defined]
        hook = item.ihook if item is not None else session.config.hook
        hook.pytest_runtest_logreport(report=report)

    def _settle(self, session: pytest.Session, signal_name: str) -> None:
        """No outcome is assumed: a check with none measured is an error, a check the run
        did not reach is "not run"."""
        for entry in self.entries.values():
            if not entry.outcome:
                entry.outcome, entry.message = "error", "no outcome was measured"
        why = f"the run was interrupted ({signal_name})" if signal_name else "the run stopped"
        for nodeid, meta in self._planned(session).items():
            if nodeid not in self.entries:
                entry = self._entry(nodeid, meta)
                entry.outcome, entry.message = "not run", f"not run: {why} before it"

    def _planned(self, session: pytest.Session) -> dict[str, CheckMeta]:
        """The selected checks in collection order: this process's items, or under xdist
        what the workers collected (the controller collects nothing)."""
        here = {i.nodeid: check_meta(i) for i in session.items if META in i.stash}
        return here or dict(self.collected)

    def _in_order(self) -> list[Entry]:
        """The rows in collection order (xdist's workers finish them in any order)."""
        planned = self._planned(self.session) if self.session is not None else {}
        order = {nodeid: n for n, nodeid in enumerate(planned)}
        return sorted(self.entries.values(), key=lambda e: order.get(e.nodeid, len(order)))

    def summary_html(self) -> str:
        """The HTML report's opening summary (opscheck.render.summary)."""
        from opscheck.render import summary

        notes = self.waivers.notes() if self.waivers else []
        return summary([e.as_dict() for e in self.entries.values()], [*notes, *self.problems])

    def not_run(self) -> int:
        return sum(e.outcome == "not run" for e in self.entries.values())

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_sep("-", "opscheck reports")
        for path in (self.paths.html, self.paths.xml, self.paths.json):
            terminalreporter.write_line(str(path))
        signal_name = lifecycle.interrupted()
        if signal_name:
            terminalreporter.write_line(
                f"interrupted ({signal_name}): {self.not_run()} checks not run"
            )
        for problem in [*self.problems, *self.guard.problems]:
            terminalreporter.write_line(f"opscheck: {problem}", red=True)


def check_state_dir(state: Path) -> None:
    """The suite's own state dir is a dir it can write in, or one usage error naming it
    (rather than a raw OSError in each of the checks that keep state there)."""
    if state.exists() and not state.is_dir():
        raise pytest.UsageError(f"the suite's state dir {state} is not a directory")
    try:
        state.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=state, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise pytest.UsageError(
            f"the suite's state dir {state} cannot be written: {exc.strerror or exc}"
        ) from None


def _evidence_text(e: dict[str, Any]) -> str:
    text = f"{e['name']}: {fmt(e['value'], e['unit'])}"
    if isinstance(e["limit"], int | float) and not isinstance(e["limit"], bool):
        text += f" (limit {fmt(e['limit'], e['unit'])})"
    elif e["limit"] is not None:
        text += f" (expected {e['limit']})"
    return text


def html_cells(report: pytest.TestReport) -> tuple[str, str]:
    """The 'Check' and 'Evidence' cells of a row of the HTML table."""
    meta: CheckMeta | None = getattr(report, "opscheck_meta", None)
    evidence: list[dict[str, Any]] = getattr(report, "opscheck_evidence", [])
    if meta is None:
        check = '<td class="col-check"></td>'
    else:
        level, why = getattr(report, "opscheck_severity", (meta.severity, ""))
        why = "" if why == "marked critical" else f": {why}" if why else ""
        tag = f" ({html.escape(level + why)})"
        tag = "" if level == "warning" and not report.failed else tag
        check = (
            f'<td class="col-check"><b>{html.escape(meta.id)}</b>{tag} '
            f"&middot; {html.escape(meta.cadence)}<br>{html.escape(meta.guide_line)}</td>"
        )
    trend = getattr(report, "opscheck_trend", {})
    items = "<br>".join(html.escape(_evidence_text(e)) + charts.spark(e, trend) for e in evidence)
    note = _row_note(report)
    if note:
        check = check.removesuffix("</td>") + note + "</td>"
    return check, f'<td class="col-evidence">{items}</td>'


def _row_note(report: pytest.TestReport) -> str:
    """Under the check's name: a skip's reason in words, or the waiver of a waived failure."""
    from opscheck.render import sentence, skip_reason

    if getattr(report, "opscheck_waiver", None):
        return f'<br><i class="waiver">{html.escape(sentence(report.wasxfail))}</i>'
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = html.escape(skip_reason(_message(report)))
        return f'<br><i class="skip-reason">{reason}</i>'
    return ""
