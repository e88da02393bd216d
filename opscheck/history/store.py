"""The history database: schema, migrations, one transaction per run, and the reads.

SQLAlchemy Core over SQLite (WAL, a busy timeout, `BEGIN IMMEDIATE` so two cron jobs
queue instead of failing) or PostgreSQL (psycopg 3; migrations under an advisory
lock). Times are UTC text `YYYY-mm-ddTHH:MM:SSZ`: they sort and compare the same on
both back ends. The schema is in docs/contracts.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

SCHEMA_VERSION = 1
meta = sa.MetaData()

schema = sa.Table(
    "opscheck_schema",
    meta,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied", sa.String(20), nullable=False),
)
runs = sa.Table(
    "opscheck_runs",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("stamp", sa.String(40), nullable=False),  # the report's file stem
    sa.Column("started", sa.String(20), nullable=False),
    sa.Column("finished", sa.String(20)),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("exit_code", sa.Integer),
    sa.Column("suite_version", sa.String(40)),
    sa.Index("ix_opscheck_runs_started", "started"),
)
results = sa.Table(
    "opscheck_results",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.ForeignKey("opscheck_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("check_id", sa.String(200), nullable=False),
    sa.Column("nodeid", sa.Text, nullable=False),
    sa.Column("param", sa.Text, nullable=False),  # "" when the check has no parameters
    sa.Column("cadence", sa.String(20), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("duration_s", sa.Float),
    sa.Column("message", sa.Text),
    sa.Index("ix_opscheck_results_check", "check_id", "run_id"),
    sa.Index("ix_opscheck_results_node", "nodeid", "run_id"),
)
evidence = sa.Table(
    "opscheck_evidence",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "result_id", sa.ForeignKey("opscheck_results.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("check_id", sa.String(200), nullable=False),
    sa.Column("nodeid", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("unit", sa.String(40), nullable=False),
    sa.Column("limit", sa.Float),  # NULL: no numeric limit
    sa.Index("ix_opscheck_evidence_check", "check_id", "run_id"),
    sa.Index("ix_opscheck_evidence_node", "nodeid", "run_id"),
)


def _v1(conn: Connection) -> None:
    for table in (runs, results, evidence):
        table.create(conn, checkfirst=True)


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [(1, _v1)]


def engine_for(url: sa.URL, timeout_s: float) -> Engine:
    """An engine that waits `timeout_s` for a lock or a server, never longer."""
    if url.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)  # as the reports dir is made
        engine = sa.create_engine(
            url, pool_size=1, max_overflow=2, connect_args={"timeout": timeout_s}
        )
        _sqlite_events(engine, timeout_s)
        return engine
    args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        ms = int(timeout_s * 1000)
        args = {
            "connect_timeout": max(1, int(timeout_s)),
            "options": f"-c lock_timeout={ms} -c statement_timeout={3 * ms}",
        }
    # One pooled connection: the charts' read at the start and the write at the end of a
    # run share it (a PostgreSQL connection with SCRAM costs tens of ms).
    return sa.create_engine(url, pool_size=1, max_overflow=2, connect_args=args)


def _sqlite_events(engine: Engine, timeout_s: float) -> None:
    """WAL and a busy timeout on every connection; writes start with BEGIN IMMEDIATE."""

    @sa.event.listens_for(engine, "connect")
    def connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" below emits BEGIN
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")  # WAL: no fsync per commit, still atomic
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def begin(conn: Connection) -> None:
        reading = conn.get_execution_options().get("opscheck_read", False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def migrate(conn: Connection) -> int:
    """Bring the schema to SCHEMA_VERSION inside the caller's transaction; returns it."""
    if _version(conn) == SCHEMA_VERSION:  # the usual case: one query, no lock
        return SCHEMA_VERSION
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
    schema.create(conn, checkfirst=True)
    have = conn.execute(sa.select(sa.func.max(schema.c.version))).scalar() or 0
    if have > SCHEMA_VERSION:
        raise RuntimeError(
            f"the history database has schema version {have}, newer than this suite's "
            f"{SCHEMA_VERSION}"
        )
    for version, step in MIGRATIONS:
        if version > have:
            step(conn)
            conn.execute(sa.insert(schema).values(version=version, applied=_now()))
    return SCHEMA_VERSION


def _version(conn: Connection) -> int:
    """The schema version stored (0: none yet)."""
    if not sa.inspect(conn).has_table(schema.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema.c.version))).scalar() or 0


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def param_of(nodeid: str) -> str:
    """`test_disk_usage[local-/]` -> `local-/`; no brackets -> ''."""
    _, sep, rest = nodeid.partition("[")
    return rest[:-1] if sep and rest.endswith("]") else ""


def number(value: Any) -> float | None:
    """A finite int or float (not a bool) as float, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def write_run(engine: Engine, doc: dict[str, Any], stamp: str) -> int:
    """Store one finished run (the JSON report's document) in one transaction; its id."""
    with engine.begin() as conn:
        migrate(conn)
        run_id = conn.execute(
            sa.insert(runs).values(
                stamp=stamp,
                started=doc.get("started") or _now(),
                finished=doc.get("finished"),
                label=doc.get("label", ""),
                host=doc.get("host", ""),
                status=doc.get("status", ""),
                exit_code=doc.get("exit_code"),
                suite_version=doc.get("suite_version"),
            )
        ).inserted_primary_key[0]
        _write_checks(conn, run_id, doc.get("checks", []))
    return int(run_id)


def _write_checks(conn: Connection, run_id: int, checks: list[dict[str, Any]]) -> None:
    """The run's results, then their numeric evidence: two batched statements."""
    if not checks:
        return
    ids = conn.execute(
        sa.insert(results).returning(results.c.id, sort_by_parameter_order=True),
        [
            {
                "run_id": run_id,
                "check_id": c["id"],
                "nodeid": c["nodeid"],
                "param": param_of(c["nodeid"]),
                "cadence": c.get("cadence", ""),
                "severity": c.get("severity", ""),
                "outcome": c.get("outcome", ""),
                "duration_s": c.get("duration_s"),
                "message": c.get("message", ""),
            }
            for c in checks
        ],
    ).scalars()
    rows = [
        {
            "result_id": result_id,
            "run_id": run_id,
            "check_id": c["id"],
            "nodeid": c["nodeid"],
            "name": e["name"],
            "value": number(e["value"]),
            "unit": e.get("unit") or "",
            "limit": number(e.get("limit")),
        }
        for result_id, c in zip(list(ids), checks, strict=True)
        for e in c.get("evidence", [])
        if number(e.get("value")) is not None
    ]
    if rows:
        conn.execute(sa.insert(evidence), rows)


@dataclass(frozen=True)
class Point:
    """One stored evidence value with its run and result."""

    started: str
    host: str
    label: str
    check_id: str
    nodeid: str
    param: str
    outcome: str
    name: str
    value: float
    unit: str
    limit: float | None


@dataclass(frozen=True)
class Result:
    """One stored check outcome."""

    started: str
    host: str
    label: str
    nodeid: str
    outcome: str
    message: str


def _has_schema(conn: Connection) -> bool:
    return sa.inspect(conn).has_table(runs.name)


def points(
    engine: Engine, check_ids: Iterable[str], since: str = "", until: str = ""
) -> list[Point]:
    """Every stored value of these checks with `since <= started < until`, oldest first."""
    j = evidence.join(results, evidence.c.result_id == results.c.id).join(
        runs, evidence.c.run_id == runs.c.id
    )
    q = (
        sa.select(
            runs.c.started,
            runs.c.host,
            runs.c.label,
            evidence.c.check_id,
            evidence.c.nodeid,
            results.c.param,
            results.c.outcome,
            evidence.c.name,
            evidence.c.value,
            evidence.c.unit,
            evidence.c.limit,
        )
        .select_from(j)
        .where(evidence.c.check_id.in_(list(check_ids)))
        .order_by(runs.c.started, evidence.c.id)
    )
    q = _between(q, since, until)
    with engine.connect().execution_options(opscheck_read=True) as conn:
        if not _has_schema(conn):
            return []
        return [Point(*row) for row in conn.execute(q)]


def outcomes(engine: Engine, check_id: str, since: str = "", until: str = "") -> list[Result]:
    """Every stored outcome of one check in the window, oldest first."""
    q = (
        sa.select(
            runs.c.started,
            runs.c.host,
            runs.c.label,
            results.c.nodeid,
            results.c.outcome,
            results.c.message,
        )
        .select_from(results.join(runs, results.c.run_id == runs.c.id))
        .where(results.c.check_id == check_id)
        .order_by(runs.c.started, results.c.id)
    )
    q = _between(q, since, until)
    with engine.connect().execution_options(opscheck_read=True) as conn:
        if not _has_schema(conn):
            return []
        return [Result(*row) for row in conn.execute(q)]


def recent(engine: Engine, nodeids: list[str], n: int) -> dict[str, dict[str, list[float]]]:
    """nodeid -> evidence name -> its values in the row's last `n` stored runs, oldest
    first; one query for all the rows of a run."""
    if not nodeids:
        return {}
    found: dict[str, dict[str, list[float]]] = {}
    with engine.connect().execution_options(opscheck_read=True) as conn:
        if not _has_schema(conn):
            return {}
        if conn.dialect.name == "postgresql":
            rows = conn.execute(RECENT_PG, {"ids": list(dict.fromkeys(nodeids)), "n": n})
        else:
            rows = conn.execute(_recent_query(nodeids, n))
        for nodeid, name, value in rows:
            found.setdefault(nodeid, {}).setdefault(name, []).append(value)
    return found


# Each row's last n runs as an index range of (nodeid, run_id), one LATERAL subquery per
# row: a short statement to compile and plan, whatever the number of rows.
RECENT_PG = sa.text(
    f"""
    SELECT e.nodeid, e.name, e.value
    FROM unnest(CAST(:ids AS text[])) AS row_(nodeid)
    CROSS JOIN LATERAL (
        SELECT r.run_id FROM {results.name} r
        WHERE r.nodeid = row_.nodeid ORDER BY r.run_id DESC LIMIT :n
    ) AS last
    JOIN {evidence.name} e ON e.nodeid = row_.nodeid AND e.run_id = last.run_id
    ORDER BY e.run_id, e.id
    """
)


def _recent_query(nodeids: list[str], n: int) -> sa.Select:
    """`recent` where LATERAL is missing (SQLite): a UNION ALL of the rows' index ranges."""
    parts = []
    for nodeid in dict.fromkeys(nodeids):
        runs_of = (
            sa.select(results.c.run_id)
            .where(results.c.nodeid == nodeid)
            .order_by(results.c.run_id.desc())
            .limit(n)
            .subquery()
        )
        parts.append(sa.select(runs_of.c.run_id, sa.literal(nodeid).label("nodeid")))
    last = sa.union_all(*parts).subquery()
    return (
        sa.select(evidence.c.nodeid, evidence.c.name, evidence.c.value)
        .select_from(
            evidence.join(
                last, (evidence.c.run_id == last.c.run_id) & (evidence.c.nodeid == last.c.nodeid)
            )
        )
        .where(evidence.c.nodeid.in_(nodeids))
        .order_by(evidence.c.run_id, evidence.c.id)
    )


def _between(q: sa.Select, since: str, until: str) -> sa.Select:
    if since:
        q = q.where(runs.c.started >= since)
    if until:
        q = q.where(runs.c.started < until)
    return q


def sqlite_file(url: sa.URL) -> Path | None:
    """The database file of a SQLite URL (None: in memory, or not SQLite)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)
