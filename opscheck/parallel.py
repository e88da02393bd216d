"""One run under pytest-xdist (`pytest -m daily -n 4`), however many workers check.

The controller owns the run: the label's lock, the report names, the JSON, HTML and XML,
the history row, the alerts and heartbeat, the textfile and the archive entry. A worker
loads the same config (and so learns the same secrets), reads the history for the
charts (a read only), runs its share of the checks and annotates their reports; it takes
no lock and writes nothing of the run's own. What a row needs travels on the report
(xdist serializes a report's plain attributes): the check's meta (a dict on the wire),
evidence, severity, trend data, waiver. With its first report a worker also sends the
list of checks it collected, so that the controller (which collects nothing) can name
the checks an interrupted run did not reach, and its waivers' counts ride along on
every report.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from opscheck import history, lifecycle, scrub
from opscheck.config import Loaded
from opscheck.report import META, CheckMeta, ReportPaths, RunState, check_meta, label_for

STEM = "opscheck_stem"  # workerinput key: the controller's report stem
COLLECTED = "opscheck_collected"  # on a worker's first report: [[nodeid, meta], ...]
WAIVER_COUNTS = "opscheck_waiver_counts"  # on each report: [[matched, applied, expired]]
USAGE = "opscheck_usage_error"  # workeroutput: the usage error that stopped its collection
COLLECTION_ERRORS = "opscheck_collection_errors"  # workeroutput: files it could not collect
PROBLEMS = "opscheck_problems"  # workeroutput: what the worker could not remove
SCRUBBED = "opscheck_scrubbed"  # on a report whose text was masked: its crash line, or None


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def start_worker(config: pytest.Config, loaded: Loaded, waived: Any) -> RunState:
    """A worker's view of the controller's run (its names, no lock, nothing reserved),
    and the plugins a worker needs; the run's own writers stay on the controller."""
    stem = config.workerinput.get(STEM)  # type: ignore[attr-defined]
    if not stem:
        raise pytest.UsageError("opscheck: an xdist worker without its controller's run")
    label = label_for(config.option.markexpr or "")
    state = RunState(config, loaded, ReportPaths(Path(stem)), label)
    heartbeat = loaded.config.alerts.heartbeat_url.replace("{label}", state.label)
    scrub.learn([heartbeat])  # as the controller's alerts.Outbound does
    if waived is not None:
        state.waivers = waived
        config.pluginmanager.register(waived, "opscheck-waivers")
    config.pluginmanager.register(ChartsOnly(state), "opscheck-history")
    worker = Worker(state)
    config.pluginmanager.register(worker, "opscheck-worker")
    lifecycle.install(worker.stop)  # a worker stops its own children and removes its scratch
    return state


class ChartsOnly(history.Hook):
    """On a worker: the charts' read and the `history` fixture; the row is the controller's."""

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.db.close()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        """Nothing: the controller says what became of the history."""


class Worker:
    """A worker's part: its collection and waiver counts on its reports, its own cleanup."""

    def __init__(self, state: RunState):
        self.state = state
        self.session: pytest.Session | None = None
        self.collected: list[list[Any]] | None = None  # sent once, with the first report

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def stop(self, signal_name: str) -> None:
        if self.session is not None:
            self.session.shouldstop = f"interrupted ({signal_name})"

    @pytest.hookimpl(wrapper=True)
    def pytest_collection(self, session: pytest.Session):
        """A usage error at collection (a check without its cadence) is the controller's
        to say, with exit code 4 as in a run without xdist."""
        try:
            return (yield)
        except pytest.UsageError as exc:
            output = session.config.workeroutput  # type: ignore[attr-defined]
            output[USAGE], output[COLLECTED] = scrub.scrub(str(exc)), _checks(session)
            raise

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = _checks(session)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """As pytest does without xdist: a check file that cannot be collected stops the
        run before any check (xdist's own loop would run the others)."""
        errors = session.testsfailed
        if errors and not session.config.option.continue_on_collection_errors:
            output = session.config.workeroutput  # type: ignore[attr-defined]
            output[COLLECTION_ERRORS], output[COLLECTED] = errors, self.collected
            raise session.Interrupted(collection_errors(errors))

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(self, config: pytest.Config, report):
        data = yield
        if data is None or data.get("$report_type") != "TestReport":
            return data
        meta = data.get("opscheck_meta")
        if isinstance(meta, CheckMeta):
            data["opscheck_meta"] = dataclasses.asdict(meta)
        if isinstance(report.longrepr, scrub.Scrubbed):  # pytest sends only its text
            crash = report.longrepr.reprcrash
            data[SCRUBBED] = None if crash is None else [crash.path, crash.lineno, crash.message]
        if self.collected is not None:
            data[COLLECTED], self.collected = self.collected, None
        waivers = self.state.waivers
        if waivers is not None:
            data[WAIVER_COUNTS] = [[w.matched, w.applied, w.expired_hits] for w in waivers.items]
        return data

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Stop what this worker started, remove its scratch (the controller cannot); what
        could not be removed goes to the controller, for the JSON and stderr."""
        problems = [f"scratch not removed: {p}" for p in lifecycle.cleanup()]
        session.config.workeroutput[PROBLEMS] = problems  # type: ignore[attr-defined]

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        lifecycle.uninstall()


def _checks(session: pytest.Session) -> list[list[Any]]:
    """[[nodeid, meta], ...] of the checks among the session's items (as far as collected)."""
    items = getattr(session, "items", [])
    return [[i.nodeid, dataclasses.asdict(check_meta(i))] for i in items if META in i.stash]


CRASH = ("path", "lineno", "message")


def _crash(fields: list[Any] | None) -> SimpleNamespace | None:
    """A masked failure's crash line (path, line, message) back in the shape pytest's has."""
    return None if fields is None else SimpleNamespace(**dict(zip(CRASH, fields, strict=True)))


def collection_errors(n: int) -> str:
    return f"{n} error{'s' if n != 1 else ''} during collection"  # pytest's own words


class Controller:
    """The controller's part: tell workers the run's names, rebuild what reports carry."""

    def __init__(self, state: RunState):
        self.state = state
        self.waiver_counts: dict[str, list[list[int]]] = {}  # worker id -> its counts

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput[STEM] = str(self.state.paths.stem)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        """`-x` or `--maxfail` reached: xdist raises its Interrupted (exit 2) where pytest
        alone just stops (exit 1). Only a signal is an interruption."""
        try:
            return (yield)
        except KeyboardInterrupt:
            if lifecycle.interrupted() or not session.shouldfail:
                raise
            return True

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error: object | None) -> None:
        """A worker that stopped at collection: the run stops as it would without xdist."""
        output = getattr(node, "workeroutput", None) or {}
        self.state.problems += output.get(PROBLEMS, [])
        self._collected(output.get(COLLECTED))
        if output.get(USAGE):
            raise pytest.UsageError(output[USAGE])
        if output.get(COLLECTION_ERRORS):
            raise pytest.Session.Interrupted(collection_errors(output[COLLECTION_ERRORS]))

    def _collected(self, collected: list[list[Any]] | None) -> None:
        if collected and not self.state.collected:  # every worker collects the same checks
            self.state.collected = {nodeid: CheckMeta(**m) for nodeid, m in collected}

    @pytest.hookimpl(wrapper=True)
    def pytest_report_from_serializable(self, config: pytest.Config, data: dict[str, Any]):
        collected = data.pop(COLLECTED, None)
        counts = data.pop(WAIVER_COUNTS, None)
        scrubbed = data.pop(SCRUBBED, False)
        report = yield
        meta = getattr(report, "opscheck_meta", None)
        if isinstance(meta, dict):
            report.opscheck_meta = CheckMeta(**meta)
        if scrubbed is not False:  # the masked failure with its crash line, as on the worker
            report.longrepr = scrub.Scrubbed(str(report.longrepr), _crash(scrubbed))
        self._collected(collected)
        if counts is not None:
            self._count_waivers(str(data.get("worker_id", "")), counts)
        return report

    def _count_waivers(self, worker: str, counts: list[list[int]]) -> None:
        """Each worker matched every waiver against the whole collection; each applied it
        to its own share of the checks."""
        waivers = self.state.waivers
        if waivers is None or len(counts) != len(waivers.items):
            return
        self.waiver_counts[worker] = counts
        every = list(self.waiver_counts.values())
        for n, w in enumerate(waivers.items):
            w.matched = max(c[n][0] for c in every)
            w.applied = sum(c[n][1] for c in every)
            w.expired_hits = sum(c[n][2] for c in every)
