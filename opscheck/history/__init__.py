"""The suite's memory: every run's outcomes and numeric evidence, kept in `[history] url`.

`Hook` is registered for a checklist run (opscheck.plugin). At session end, after the
JSON report is written, it stores the run in one transaction and adds a `history`
field to the JSON. A history that cannot be written (bad URL, unwritable file, a lock
held past `[history] timeout_s`, PostgreSQL down) is a warning in the terminal, on
stderr and in that field: never a crash, never a lost report, the exit code unchanged.

A relative SQLite path is relative to the parent of the reports dir, so the default
`sqlite:///reports/history.sqlite` lies in the reports dir wherever `[reports] dir`
points (`/var/lib/opscheck/reports` -> `/var/lib/opscheck/reports/history.sqlite`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from opscheck import writers
from opscheck.scrub import redact_url, scrub

if TYPE_CHECKING:
    import sqlalchemy as sa

    from opscheck.config import Config
    from opscheck.report import RunState

CHART_RUNS = 30  # runs shown in a row's trend chart


class HistoryError(Exception):
    """The history could not be opened, read or written; the text says why, in one line."""


def reports_dir(conf: Config, root: Path) -> Path:
    """`[reports] dir`, a relative one taken from the suite's root (as the run does)."""
    reports = Path(conf.reports.dir).expanduser()
    return reports if reports.is_absolute() else root / reports


def resolve_url(url: str, base: Path) -> sa.URL:
    """The URL to connect to: a relative SQLite path joined to `base`, `postgresql://`
    given the installed psycopg 3 driver. HistoryError on a URL that does not parse."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except Exception:  # ArgumentError, ValueError: the URL itself, never shown whole
        raise HistoryError(
            f"history: [history] url {redact_url(url)!r} is not a database URL"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        parsed = parsed.set(database=str(path if path.is_absolute() else base / path))
    return parsed


def shown(url: sa.URL) -> str:
    """The URL as output may show it: without user and password."""
    return redact_url(url.render_as_string(hide_password=False))


def reason(exc: BaseException) -> str:
    """One line for a database failure, without the SQL, its parameters or a password."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc) or type(exc).__name__
    return scrub(text.strip().splitlines()[0] if text.strip() else type(exc).__name__)


class Database:
    """One history database, opened lazily; every failure is a HistoryError."""

    def __init__(self, url: str, base: Path, timeout_s: float):
        self.raw_url = url
        self.base = base
        self.timeout_s = timeout_s
        self._engine = None
        self.url: sa.URL | None = None

    @classmethod
    def from_config(cls, conf: Config, root: Path) -> Database:
        reports = reports_dir(conf, root)
        return cls(conf.history.url, reports.parent, conf.history.timeout_s)

    def where(self) -> str:
        if self.url is not None and self.url.get_backend_name() == "sqlite":
            return shown(self.url)  # the file, made absolute
        return redact_url(self.raw_url)

    def engine(self):
        if self._engine is None:
            from opscheck.history import store

            self.url = resolve_url(self.raw_url, self.base)
            try:
                self._engine = store.engine_for(self.url, self.timeout_s)
            except Exception as exc:  # no such dialect or driver
                raise HistoryError(f"history {self.where()}: {reason(exc)}") from None
        return self._engine

    def close(self) -> None:
        """Give back the pooled connection (a run's reads and write share it)."""
        if self._engine is not None:
            self._engine.dispose()

    def call(self, what: str, function_name: str, *args: Any) -> Any:
        """`store.<function_name>(engine, *args)`, its failure a HistoryError naming `what`."""
        from opscheck.history import store

        engine = self.engine()
        try:
            return getattr(store, function_name)(engine, *args)
        except Exception as exc:  # any driver's error: one line, never a traceback
            raise HistoryError(f"history {self.where()}: {what}: {reason(exc)}") from None


class Hook:
    """The run's history: charts' data while it runs, the write at session end."""

    def __init__(self, state: RunState):
        self.state = state
        root = state.pytest_config.rootpath
        self.db = Database.from_config(state.loaded.config, root)
        self.warning = ""
        self.trends: dict[str, dict[str, list[float]]] = {}

    @pytest.fixture(scope="session")
    def history(self) -> Database:
        """The history database (checks on trends read it)."""
        return self.db

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The charts' data for every selected row: one query before the checks run."""
        nodeids = [i.nodeid for i in session.items]
        try:
            self.trends = self.db.call("reading", "recent", nodeids, CHART_RUNS - 1)
        except HistoryError:
            self.trends = {}  # no charts; the write at session end says what is wrong

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):
        """Outermost: the row's stored values go on its report, for its charts."""
        outcome = yield
        report = outcome.get_result()
        if report.when == "call":
            report.opscheck_trend = self.trends.get(report.nodeid, {})  # type: ignore[attr-defined]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """After the JSON report is written (RunState's sessionfinish runs first)."""
        doc = self.state.doc
        if not doc:
            return
        doc["history"] = self.write(doc)
        self.db.close()
        self.state._write_json()
        if self.warning:
            writers.say([self.warning])

    def write(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store the run; the `history` field of the JSON report."""
        try:
            run_id = self.db.call("not written", "write_run", doc, self.state.paths.stem.name)
        except HistoryError as exc:
            self.warning = f"warning: {exc}"
            return {"url": self.db.where(), "written": False, "warning": self.warning}
        return {"url": self.db.where(), "written": True, "run_id": run_id}

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.warning:
            terminalreporter.write_line(f"opscheck: {self.warning}", yellow=True)
