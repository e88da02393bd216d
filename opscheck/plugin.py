"""The pytest side of opscheck: options, config, cadence rules, fixtures, reports.

Registered through the `pytest11` entry point, so `--ops-config PATH` is known as
early as pytest allows. It stays inert outside a suite whose ini sets
`opscheck_suite = true`.
"""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from pytest_metadata.plugin import metadata_key as METADATA

from opscheck import (
    alerts,
    archive,
    fleet,
    history,
    lifecycle,
    parallel,
    replicas,
    rootdir,
    scrub,
    waivers,
)
from opscheck import config as cfgmod
from opscheck.evidence import Recorder
from opscheck.outcomes import CADENCES
from opscheck.probes import ProbeError
from opscheck.probes.host import LocalHost
from opscheck.probes.remote import Fleet
from opscheck.report import META, RunState, check_meta, gate_only, is_check

STATE = pytest.StashKey[RunState]()
RECORDER = pytest.StashKey[Recorder]()
TARGETS = pytest.StashKey[fleet.Targets]()
FLEET = pytest.StashKey[Fleet]()
# testinfra's own options (its plugin registers them): on the command line they win
TESTINFRA_OPTIONS = ("ssh_config", "ssh_identity_file", "ansible_inventory")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opscheck", "opscheck (maintenance checks)")
    group.addoption(
        "--ops-config",
        dest="ops_config",
        metavar="PATH",
        help="config file (default: $OPSCHECK_CONFIG, then ./opscheck.toml, then built-in)",
    )
    group.addoption("--base-url", dest="ops_base_url", metavar="URL", help="service.base_url")
    group.addoption("--reports-dir", dest="ops_reports_dir", metavar="DIR", help="reports.dir")
    parser.addini("opscheck_suite", "this rootdir is an opscheck suite", type="bool", default=False)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    rootdir.repin(early_config, args)


def _active(config: pytest.Config) -> bool:
    return bool(config.getini("opscheck_suite"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _active(config) or not _is_check_run(config):
        return
    overrides: dict[str, dict[str, str]] = {}
    if config.option.ops_base_url:
        overrides["service"] = {"base_url": config.option.ops_base_url}
    if config.option.ops_reports_dir:
        overrides["reports"] = {"dir": config.option.ops_reports_dir}
    if _host_options(config):
        overrides["hosts"] = _host_options(config)
    try:
        path = cfgmod.find_path(config.option.ops_config, config.invocation_params.dir)
        loaded = cfgmod.load(path, overrides)
        config.stash[TARGETS] = fleet.resolve(loaded.config.hosts)
    except (cfgmod.ConfigError, fleet.TargetsError) as exc:
        raise pytest.UsageError(scrub.scrub(str(exc))) from None
    scrub.learn(scrub.env_file_secrets(loaded.config.paths.env_file))  # in memory only
    waived = waivers.load(loaded, config.rootpath)  # a bad waivers file: one usage error
    if parallel.is_worker(config):  # an xdist worker: checks only, the controller writes
        config.stash[STATE] = parallel.start_worker(config, loaded, waived)
        return
    state = RunState.start(config, loaded)
    config.stash[STATE] = state
    if waived is not None:
        state.waivers = waived
        config.pluginmanager.register(waived, "opscheck-waivers")
    config.option.htmlpath = str(state.paths.html)
    config.option.self_contained_html = True
    config.option.xmlpath = str(state.paths.xml)
    config.pluginmanager.register(state, "opscheck-run")
    config.pluginmanager.register(alerts.Outbound(state), "opscheck-alerts")
    config.pluginmanager.register(history.Hook(state), "opscheck-history")
    config.pluginmanager.register(parallel.Controller(state), "opscheck-xdist")
    # From here on SIGTERM and SIGINT stop children, remove scratch, make the check in
    # progress an error, finish the reports and exit with code 2.
    lifecycle.install(state.stop)
    if METADATA in config.stash:  # pytest-metadata configured before us: add to its table
        config.stash[METADATA].update(state.metadata())


def _host_options(config: pytest.Config) -> dict:
    """testinfra's --hosts, --ssh-config, --ssh-identity-file, --ansible-inventory, when
    given (absent with `-p no:testinfra`)."""
    given: dict = {}
    hosts = getattr(config.option, "hosts", None)
    if hosts:
        given["targets"] = [h.strip() for h in hosts.split(",") if h.strip()]
    for key in TESTINFRA_OPTIONS:
        if getattr(config.option, key, None):
            given[key] = getattr(config.option, key)
    return given


def _is_check_run(config: pytest.Config) -> bool:
    """True when the run's paths reach into checks/ or loadtests/ (not the suite's own tests)."""
    root = config.rootpath
    suites = [root / "checks", root / "loadtests"]
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        path = (config.invocation_params.dir / path).resolve()
        for suite in suites:
            if path == suite or suite in path.parents or path in suite.parents:
                return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Every check carries exactly one cadence, a guide line and a unique id."""
    if not _active(config):
        return
    problems = []
    seen: dict[str, str] = {}
    for item in items:
        if not is_check(item):
            continue
        cadences = [m.name for m in item.iter_markers() if m.name in CADENCES]
        meta = check_meta(item)
        if len(set(cadences)) != 1 and not gate_only(item):
            have = ", ".join(sorted(set(cadences))) or "none"
            problems.append(f"{item.nodeid}: a check needs exactly one cadence marker, has {have}")
        if not meta.guide_line:
            problems.append(f"{item.nodeid}: a check needs a docstring naming its guide line")
        where = str(item.path)
        if seen.setdefault(meta.id, where) != where:
            problems.append(
                f"{item.nodeid}: check id {meta.id!r} is also defined in {seen[meta.id]}"
            )
    if problems:
        raise pytest.UsageError("\n".join(dict.fromkeys(problems)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Hosts (by role) and each host's mounts become parameters at collection, so each is
    its own row."""
    state = metafunc.config.stash.get(STATE, None)
    conf = state.loaded.config if state else cfgmod.Config()
    if "host_spec" in metafunc.fixturenames:
        targets = metafunc.config.stash.get(TARGETS, None) or fleet.Targets(conf.hosts.targets)
        fleet.parametrize(metafunc, targets, conf)
    elif "mount" in metafunc.fixturenames:
        local = LocalHost()
        paths = [*conf.paths.disk_mounts, conf.paths.app_dir, conf.paths.backup_dir]
        mounts = list(dict.fromkeys(local.mount_of(p) for p in paths))
        metafunc.parametrize("mount", mounts, ids=mounts)
    replicas.parametrize(metafunc, conf.service)


@pytest.fixture(scope="session")
def cfg(request: pytest.FixtureRequest) -> cfgmod.Config:
    """The run's validated config."""
    state = request.config.stash.get(STATE, None)
    if state is None:
        return cfgmod.load(None).config
    return state.loaded.config


@pytest.fixture(scope="session")
def report_file(request: pytest.FixtureRequest):
    """`report_file("locust", ".html")`: a file beside this run's report, or None."""
    state = request.config.stash.get(STATE, None)

    def path(tag: str, suffix: str) -> Path | None:
        if state is None:
            return None
        return state.paths.stem.with_name(f"{state.paths.stem.name}-{tag}{suffix}")

    return path


@pytest.fixture(scope="session")
def state_dir(request: pytest.FixtureRequest) -> Path:
    """The suite's own state (log summaries, history): beside the reports, never the target."""
    state = request.config.stash.get(STATE, None)
    reports = Path(state.loaded.config.reports.dir if state else "reports").expanduser()
    if not reports.is_absolute():
        reports = request.config.rootpath / reports
    return reports / ".state"


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Recorder:
    """Where a check records what it measured; it lands in the HTML and JSON reports."""
    recorder = Recorder()
    request.node.stash[RECORDER] = recorder
    return recorder


@pytest.fixture
def ops_host(host_spec: str, cfg: cfgmod.Config, request: pytest.FixtureRequest):
    """The host under check (parametrized over `[hosts] targets`). Not `host`: that is
    pytest-testinfra's fixture, which stays free for the operators' own testinfra tests.
    The first host check reads every selected remote host at once (`fleet.plan`)."""
    config = request.config
    hosts = config.stash.get(FLEET, None)
    if hosts is None:
        hosts = config.stash[FLEET] = Fleet(fleet.options(cfg.hosts))
        hosts.warm(fleet.plan(request.session.items, cfg))
    return hosts.host(host_spec)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The hosts' connections close with the session (ssh masters stopped)."""
    hosts = session.config.stash.get(FLEET, None)
    if hosts is not None:
        hosts.close()


@pytest.fixture
def service_target(
    request: pytest.FixtureRequest, cfg: cfgmod.Config, evidence: Recorder
) -> replicas.ServiceTarget:
    """The service URL under check: `base_url`, or the load balancer or one replica
    (parametrized over `[service] base_urls`), named in the evidence and the message."""
    target = getattr(request, "param", None) or replicas.ServiceTarget(cfg.service.base_url)
    if target.role:
        evidence.subject = target.name
        evidence.record(replicas.ROLES[target.role], target.label)
    return target


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """A probe that cannot measure fails its check with the probe's reason, not a traceback."""
    try:
        return (yield)
    except ProbeError as exc:
        reason = str(exc)
    pytest.fail(reason, pytrace=False)  # outside the except: no "During handling of" chain


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    state = item.config.stash.get(STATE, None)
    if state is not None:
        scrub.scrub_report(report)
    if state is None or META not in item.stash:  # not a checklist run, or not a check
        return
    recorder = item.stash.get(RECORDER, None)
    state.annotate(item, report, recorder.items if recorder else [])
    if recorder and report.when == "call" and (recorder.attachments or recorder.links):
        from pytest_html import extras

        report.extras = [
            *getattr(report, "extras", []),
            *(extras.html(scrub.scrub_values(a)) for a in recorder.attachments),
            *(extras.url(scrub.scrub(url), name=name) for name, url in recorder.links),
        ]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A collection error (an import failing on a secret) is masked like a test's."""
    outcome = yield
    if STATE in collector.config.stash:
        scrub.scrub_report(outcome.get_result())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Every line pytest prints goes through the scrubber."""
    if STATE in session.config.stash:
        tw = session.config.get_terminal_writer()
        tw._file = scrub.ScrubbingStream(tw._file)  # pytest's TerminalWriter has no setter


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last line of defence: the written reports hold no learned secret."""
    state = config.stash.get(STATE, None)
    if state is not None and not parallel.is_worker(config):
        lifecycle.uninstall()
        for path in (state.paths.html, state.paths.xml, state.paths.json):
            scrub.scrub_file(path)
        archive.archive_run(state)  # last: the files are final


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(STATE, None)
    if state is None:
        return None
    return [f"opscheck: {line}" for line in state.header_lines()]


def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(1, '<th class="sortable" data-column-type="check">Check (guide line)</th>')
    cells.insert(3, "<th>Evidence</th>")


def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    from opscheck.report import html_cells

    check_cell, evidence_cell = html_cells(report)
    cells.insert(1, check_cell)
    cells.insert(3, evidence_cell)


def pytest_html_results_table_html(report: pytest.TestReport, data: list[str]) -> None:
    """A skip's log is its reason in words, not pytest's (path, line, reason) tuple."""
    from opscheck.render import skip_reason
    from opscheck.report import _message

    if report.skipped and isinstance(report.longrepr, tuple):
        data[:] = [html.escape(skip_reason(_message(report)))]


def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str], session):
    state = session.config.stash.get(STATE, None)
    signal_name = lifecycle.interrupted()
    if state is not None and signal_name:
        prefix.append(
            f"<p><b>Interrupted ({signal_name})</b>: {state.not_run()} checks not run "
            "(listed as not run in the JSON report)</p>"
        )
    if state is not None:
        prefix.append(state.summary_html())


def pytest_html_report_title(report) -> None:
    report.title = "opscheck: AlimTalk template service maintenance checks"


@pytest.hookimpl(optionalhook=True)
def pytest_metadata(metadata: dict, config: pytest.Config) -> None:
    """The report header: target, config file and hash, host, suite version."""
    state = config.stash.get(STATE, None)
    if state is not None:
        metadata.update(state.metadata())
