"""After the report: one alert message per run through Apprise, the cron heartbeat, the
Prometheus textfile, and what became of each in the run's JSON and output.

Routing: a plain `[alerts] urls` string gets the critical failures (and the recovery of
checks whose failure was critical); a URL tagged `chat` gets every failure and recovery.
Each URL gets at most one message a run. A recovery is a check that failed in the
previous run of the same label (`previous_run`) and passes now.

Nothing here may break the run: every delivery and ping runs in its own daemon thread
with a deadline (`[alerts] timeout_s`), every failure is a line on stderr and an entry
in the JSON, and the exit code stays the checks' own. URLs are shown redacted
(`shown`), error texts scrubbed.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from opscheck import metrics, scrub, writers
from opscheck.config import CHAT_TAG, AlertUrl, Config
from opscheck.evidence import fmt

FAILING = ("failed", "error")
MAX_EVIDENCE = 4  # evidence lines per failed check in a message
MAX_CHECKS = 40  # failed checks listed in one message (the report has the rest)
_STAMP = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")


def shown(url: str, index: int | None = None) -> str:
    """A URL as outputs may show it: scheme and host (when it is a host name or address,
    not a token), never the user, password, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    looks_like_host = host == "localhost" or "." in host or ":" in host
    where = f"{parts.scheme}://{host}" if looks_like_host else f"{parts.scheme}://…"
    if looks_like_host and parts.port:
        where += f":{parts.port}"
    where = scrub.scrub_values(where)
    return f"urls[{index}] {where}" if index is not None else where


def _param(nodeid: str) -> str:
    """The parameter part of a node id ("local-/" of "...::test_disk_usage[local-/]")."""
    return nodeid[nodeid.index("[") + 1 : -1] if nodeid.endswith("]") and "[" in nodeid else ""


def _name(check: dict[str, Any]) -> str:
    param = _param(check.get("nodeid", ""))
    return f"{check['id']} [{param}]" if param else check["id"]


# -- the previous run ---------------------------------------------------------------


def _stamp_key(path: Path) -> tuple[str, int]:
    m = _STAMP.match(path.stem)
    return (m.group(1), int(m.group(2) or 1)) if m else ("", 0)


def previous_run(current_json: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """(name, {nodeid: check}) of the newest finished report of the same label before
    this one; ("", {}) when there is none. (The one place to switch to the history DB.)"""
    here = _stamp_key(current_json)
    older = [p for p in current_json.parent.glob("*.json") if ("", 0) < _stamp_key(p) < here]
    for path in sorted(older, key=_stamp_key, reverse=True):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a report cut short or unreadable: look further back
        if isinstance(doc, dict) and isinstance(doc.get("checks"), list):
            return path.name, {c["nodeid"]: c for c in doc["checks"] if "nodeid" in c}
    return "", {}


# -- what to say ---------------------------------------------------------------------


@dataclass
class Plan:
    """What this run has to tell: failures, recoveries, against which earlier report."""

    failures: list[dict[str, Any]]
    recovered: list[dict[str, Any]]  # the previous run's entries of checks passing now
    previous: str = ""

    @classmethod
    def of(cls, doc: dict[str, Any], json_path: Path) -> Plan:
        checks = doc.get("checks", [])
        failures = [c for c in checks if c.get("outcome") in FAILING]
        previous, before = previous_run(json_path)
        passing = {c["nodeid"] for c in checks if c.get("outcome") == "passed"}
        recovered = [c for n, c in before.items() if c.get("outcome") in FAILING and n in passing]
        return cls(failures, recovered, previous)

    def for_target(self, target: AlertUrl) -> tuple[list[dict], list[dict]]:
        """(failures, recoveries) this URL is told of: chat URLs all, others critical."""
        if CHAT_TAG in target.tags:
            return self.failures, self.recovered
        critical = [c for c in self.failures if c.get("severity") == "critical"]
        return critical, [c for c in self.recovered if c.get("severity") == "critical"]


def _evidence_line(e: dict[str, Any]) -> str:
    text = f"{e['name']}: {fmt(e['value'], e.get('unit', ''))}"
    limit = e.get("limit")
    if isinstance(limit, int | float) and not isinstance(limit, bool):
        return f"{text} (limit {fmt(limit, e.get('unit', ''))})"
    return f"{text} (expected {limit})"


def _breached(e: dict[str, Any], message: str) -> bool:
    """Whether an evidence item is one the check failed on: a value compared with a number
    that the failure message names, or a value that is not what was expected."""
    limit = e.get("limit")
    if limit is None:
        return False
    if isinstance(limit, int | float) and not isinstance(limit, bool):
        return bool(e.get("name")) and e["name"] in message
    return str(e.get("value")) != str(limit)


def _failure_lines(check: dict[str, Any]) -> list[str]:
    """A failed check's line, then its breached values with their limits, else its
    failure message."""
    lines = [f"- [{check.get('severity', 'warning')}] {_name(check)}: {check.get('outcome')}"]
    message = check.get("message") or ""
    named = [e for e in check.get("evidence", []) if _breached(e, message)]
    lines += [f"    {_evidence_line(e)}" for e in named[:MAX_EVIDENCE]]
    if len(named) > MAX_EVIDENCE:
        lines.append(f"    … and {len(named) - MAX_EVIDENCE} more in the report")
    if not named and message:
        lines.append(f"    {message.splitlines()[0][:300]}")
    return lines


def compose(
    doc: dict[str, Any],
    failures: list[dict[str, Any]],
    recovered: list[dict[str, Any]],
    previous: str,
    report: Path,
) -> tuple[str, str, str]:
    """(title, body, Apprise notify type) of one run's message."""
    label, host = doc.get("label", ""), doc.get("host", "")
    critical = sum(c.get("severity") == "critical" for c in failures)
    parts = []
    if failures:
        parts.append(f"{len(failures)} failed ({critical} critical)")
    if recovered:
        parts.append(f"{len(recovered)} recovered")
    title = f"opscheck {label} on {host}: {', '.join(parts)}"
    lines = [f"{title}, exit code {doc.get('exit_code')}", ""]
    if failures:
        lines.append("Failed:")
        for check in failures[:MAX_CHECKS]:
            lines += _failure_lines(check)
        if len(failures) > MAX_CHECKS:
            lines.append(f"… and {len(failures) - MAX_CHECKS} more failed checks in the report")
        lines.append("")
    if recovered:
        lines.append(f"Recovered (failed in {previous}, passing now):")
        lines += [f"- {_name(c)}" for c in recovered]
        lines.append("")
    lines.append(f"Report: {report}")
    kind = "failure" if critical else "warning" if failures else "success"
    return scrub.scrub(title), scrub.scrub("\n".join(lines)), kind


# -- delivery ------------------------------------------------------------------------


@dataclass
class Attempt:
    """One bounded, threaded attempt: `status` is "sent", "failed" or "timed out"."""

    what: str
    send: Callable[[], str]  # returns "" when delivered, else why not
    status: str = "timed out"
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # shown in the JSON before status
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Attempt:
        self.thread = threading.Thread(target=self._run, name=f"opscheck {self.what}", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            why = self.send()
        except Exception as exc:  # a plugin's bug is a failed delivery, never a crash
            why = f"{type(exc).__name__}: {exc}"
        self.status, self.error = ("failed", scrub.scrub(why)) if why else ("sent", "")
        self.done.set()

    def wait(self, deadline: float, timeout_s: float) -> Attempt:
        """Wait until `deadline` (time.monotonic) at most; past it, "timed out"."""
        if not self.done.wait(max(0.0, deadline - time.monotonic())):
            self.error = f"no answer within {fmt(timeout_s, 's')}"
        return self

    def as_dict(self) -> dict[str, Any]:
        status = {"status": self.status, "error": self.error} if self.error else {"status": "sent"}
        return {**self.detail, **status}


def _load_plugins(urls: list[str]) -> None:
    """Import Apprise and the plugins of `urls` here, before the threads use them, with
    their own deprecation warnings (imghdr ...) kept out of the run's warning summary."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        for url in urls:
            apprise.Apprise.instantiate(url)


class _ThreadLog(logging.Handler):
    """Apprise's warnings and errors logged by the calling thread (one delivery's own)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


def _apprise_send(url: str, title: str, body: str, kind: str, timeout_s: float) -> str:
    """Deliver one message to one URL; "" when delivered, else Apprise's reason."""
    import apprise

    log = logging.getLogger("apprise")
    captured = _ThreadLog()
    log.addHandler(captured)
    try:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            return "not a URL this Apprise knows"
        plugin.socket_connect_timeout = plugin.socket_read_timeout = timeout_s
        if plugin.notify(body=body, title=title, notify_type=apprise.NotifyType(kind)):
            return ""
        return "; ".join(ln for ln in captured.lines if ln.strip())[:500] or "not delivered"
    finally:
        log.removeHandler(captured)


def _below(url: str, name: str) -> str:
    """`<url>/<name>`, the query (Healthchecks' `?create=1` ...) kept after it."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{name}"))


def _ping(url: str, body: str, timeout_s: float) -> str:
    """POST `body` to a heartbeat URL; "" on a 2xx answer, else why not."""
    request = urllib.request.Request(url, data=body.encode(), method="POST")
    request.add_header("Content-Type", "text/plain; charset=utf-8")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return "" if 200 <= answer.status < 300 else f"answered {answer.status}"
    except OSError as exc:  # URLError, HTTPError, timeouts, refusals
        reason = getattr(exc, "reason", None) or exc
        code = getattr(exc, "code", None)
        return f"answered {code}" if code else f"{type(exc).__name__}: {reason}"


# -- the plugin object ---------------------------------------------------------------


class Outbound:
    """Registered by the plugin for a checklist run; acts once the reports are written."""

    def __init__(self, state) -> None:
        self.state = state
        self.config: Config = state.loaded.config
        self.start_ping: Attempt | None = None
        self.lines: list[str] = []  # what the terminal summary says
        self.deadline = 0.0  # time.monotonic() by which every delivery has had its chance
        scrub.learn([self.heartbeat_url])  # with {label} replaced: the URL is the credential

    @property
    def heartbeat_url(self) -> str:
        return self.config.alerts.heartbeat_url.replace("{label}", self.state.label)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.heartbeat_url:
            url, timeout = _below(self.heartbeat_url, "start"), self.config.alerts.timeout_s
            self.start_ping = Attempt("heartbeat start", lambda: _ping(url, "", timeout)).start()

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int):
        """After the JSON, HTML and XML are written (inside every other wrapper)."""
        result = yield
        if self.state.doc:
            try:
                self.finish()
            except Exception as exc:  # a bug here never costs the run its exit code
                self._say(f"alerts: not sent: {type(exc).__name__}: {scrub.scrub(str(exc))}")
            except KeyboardInterrupt:  # a signal after the checks: the reports are written
                self._say("alerts: interrupted; the JSON report may lack their status")
        return result

    def finish(self) -> None:
        """Send, ping and write the textfile at once, then put what became of each in the
        JSON (rewritten atomically: on failure the JSON stays as written, and we say so)."""
        doc = self.state.doc
        self.deadline = time.monotonic() + self.config.alerts.timeout_s + 1.0  # all in parallel
        added: dict[str, Any] = {}
        deliveries = self._deliveries(doc)
        finish_ping = self._finish_ping(doc)
        if self.config.reports.textfile:
            added["textfile"] = metrics.write(
                self.config.reports.textfile, self.state.label, doc, self.state.started
            )
            if "error" in added["textfile"]:
                self._say(f"textfile: {added['textfile']['error']}")
        if deliveries is not None:
            plan, sends = deliveries
            for attempt in sends:
                self._wait(attempt)
            added["alerts"] = self._alerts_field(plan, sends)
        if self.heartbeat_url:
            added["heartbeat"] = self._heartbeat_field(finish_ping)
        if added:
            doc.update(added)
            try:
                text = json.dumps(doc, ensure_ascii=False, indent=1)
                writers.write_atomic(self.state.paths.json, text)
            except OSError as exc:
                self._say(
                    f"JSON report {self.state.paths.json}: alert and heartbeat status not "
                    f"added: {exc.strerror or exc} (the report is as written before)"
                )

    def _report_path(self) -> Path:
        html_ok = "HTML" not in self.state.guard.failed and self.state.paths.html.exists()
        return self.state.paths.html if html_ok else self.state.paths.json

    def _deliveries(self, doc: dict[str, Any]):
        """(plan, [attempt]) of this run's messages, started; None: no URLs configured."""
        targets = self.config.alerts.targets()
        if not targets:
            return None
        plan = Plan.of(doc, self.state.paths.json)
        todo = [(i, t, *plan.for_target(t)) for i, t in enumerate(targets)]
        todo = [
            (i, t, failures, recovered)
            for i, t, failures, recovered in todo
            if failures or recovered
        ]
        if todo:
            logging.getLogger("apprise").propagate = False  # its lines go to the JSON
            _load_plugins([t.url for _, t, _, _ in todo])
        sends = []
        for i, target, failures, recovered in todo:
            message = compose(doc, failures, recovered, plan.previous, self._report_path())
            send = partial(_apprise_send, target.url, *message, self.config.alerts.timeout_s)
            detail = {
                "url": shown(target.url, i),
                "tags": list(target.tags),
                "failed": [_name(c) for c in failures],
                "recovered": [_name(c) for c in recovered],
            }
            sends.append(Attempt(detail["url"], send, detail=detail).start())
        return plan, sends

    def _alerts_field(self, plan: Plan, sends: list[Attempt]) -> dict[str, Any]:
        for attempt in sends:
            if attempt.status != "sent":
                self._say(f"alert to {attempt.what} {attempt.status}: {attempt.error}")
            else:
                self.lines.append(f"alert sent to {attempt.what}")
        return {
            "previous_report": plan.previous or None,
            "recovered": [_name(c) for c in plan.recovered],
            "deliveries": [attempt.as_dict() for attempt in sends],
        }

    def _finish_ping(self, doc: dict[str, Any]) -> Attempt | None:
        if not self.heartbeat_url:
            return None
        code = doc.get("exit_code")
        url = self.heartbeat_url if code == 0 else _below(self.heartbeat_url, "fail")
        failed = [_name(c) for c in doc.get("checks", []) if c.get("outcome") in FAILING]
        body = scrub.scrub(
            f"opscheck {self.state.label}: exit code {code}; "
            f"failed: {', '.join(failed) or 'none'}; report: {self._report_path()}"
        )
        timeout = self.config.alerts.timeout_s
        return Attempt("heartbeat finish", lambda: _ping(url, body, timeout)).start()

    def _heartbeat_field(self, finish: Attempt | None) -> dict[str, Any]:
        out: dict[str, Any] = {"url": shown(self.heartbeat_url)}
        for key, attempt in (("start", self.start_ping), ("finish", finish)):
            if attempt is None:
                continue
            self._wait(attempt)
            out[key] = attempt.as_dict()
            if attempt.status != "sent":
                self._say(f"heartbeat {key} ping {attempt.status}: {attempt.error}")
        return out

    def _wait(self, attempt: Attempt) -> None:
        """Wait for `attempt` until the common deadline; a signal ends every wait."""
        try:
            attempt.wait(self.deadline, self.config.alerts.timeout_s)
        except KeyboardInterrupt:  # lifecycle.Interrupted: the checks are done, finish up
            self.deadline = 0.0
            attempt.error = "the run was interrupted while it was being sent"

    def _say(self, line: str) -> None:
        line = scrub.scrub(line)
        self.lines.append(line)
        writers.say([line])

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for line in self.lines:
            terminalreporter.write_line(f"opscheck: {line}")
