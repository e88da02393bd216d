"""Load and validate the TOML config (`opscheck.toml`), the suite's public interface.

Every key has the maintenance guide's value as its default, so a file names only
what differs. `${NAME}` inside a string is taken from the environment, so secrets
never sit in the file. Any problem raises `ConfigError` with one line naming the
file and the key; the plugin turns it into pytest's usage error (exit code 4).
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from opscheck import scrub

ENV_VAR = "OPSCHECK_CONFIG"
DEFAULT_NAME = "opscheck.toml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_INPUT_VALUE = re.compile(r",?\s*input_value=.*", re.S)  # pydantic's echo of the input
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")  # a validator quoting (part of) the value


class ConfigError(Exception):
    """A config that must stop the run before any check; the text is one line."""


class _Section(BaseModel):
    # inf and nan are refused: a timeout of inf never ends, a limit of inf never fails
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class SmokeRequest(_Section):
    """One generation request of the daily smoke test (a run nonce is appended).

    The real service passes only `user_request` to its workflow: its request analyzer
    picks the variables itself (always 수신자명, more on keywords), and the other fields
    only fill metadata. `required_variables` are demanded in the answer's text only when
    set, for a deployment that honours them.
    """

    user_request: str = Field(min_length=10, max_length=900)
    business_type: str = ""
    service_type: str = ""
    required_variables: list[str] = []


CANONICAL_SMOKE = [
    SmokeRequest(
        user_request="피자 주문 완료 안내 메시지를 만들어 주세요",
        business_type="음식점",
        service_type="주문",
    )
]


class Service(_Section):
    base_url: str = "http://127.0.0.1:8000"
    timeout_s: float = Field(10, gt=0)
    generate_smoke: bool = True
    smoke_requests: list[SmokeRequest] = CANONICAL_SMOKE
    user: str = "app"
    timezone: str = ""
    ca_bundle: str = ""  # CA file trusted for an https base_url; "" = the system's
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)  # a longer answer is a failure
    base_urls: list[str] = []  # the replicas' own URLs: health and smoke per replica too

    @field_validator("base_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for n, url in enumerate(value, 1):
            if not url.lower().startswith(("http://", "https://")):
                raise ValueError(f"entry {n}: not an http:// or https:// URL")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError("unknown time zone (not in the IANA database)") from None
        return value


class Paths(_Section):
    app_dir: str = "/app"
    env_file: str = ""
    app_log: str = ""
    access_log: str = ""
    backup_dir: str = "/backups/kakao-template"
    chroma_dir: str = ""
    template_data: str = ""
    requirements: str = ""
    osv_dir: str = ""
    logrotate_conf: str = "/etc/logrotate.d/kakao-template"
    temp_dirs: list[str] = ["/tmp"]
    disk_mounts: list[str] = ["/"]
    key_registry: str = "/secure/api_keys.json"
    attestations_dir: str = "attestations"
    scratch_dir: str = ""  # where restore drills unpack; "" = the system's temp dir
    access_log_format: str = "timed"  # nginx log_format text, or combined, timed, main, json
    secrets_baseline: str = ""  # detect-secrets baseline; "" = <app_dir>/.secrets.baseline if any
    secrets_exclude: list[str] = []  # more globs (paths below app_dir, or names) not scanned
    temp_owner: str = ""  # whose temp files count: "" = service.user, "*" = every owner
    temp_patterns: list[str] = ["*"]  # globs (below a temp dir, or names) that count
    waivers: str = ""  # waivers file; "" = waivers.toml beside the config file, if there is one

    @field_validator("access_log_format")
    @classmethod
    def _readable_format(cls, value: str) -> str:
        from opscheck.probes.logs.access import FormatError, compile_format

        try:
            compile_format(value)
        except FormatError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _below_app_dir(self) -> Paths:
        """Paths left empty default to their place below `app_dir`."""
        below = {
            "env_file": ".env",
            "app_log": "logs/app.log",
            "chroma_dir": "chroma_db",
            "template_data": "data/kakao_template_vectordb_data.json",
            "requirements": "requirements.txt",
        }
        for key, rel in below.items():
            if not getattr(self, key):
                object.__setattr__(self, key, str(Path(self.app_dir) / rel))
        return self


class Thresholds(_Section):
    cpu_percent: float = Field(80, ge=0)
    memory_percent: float = Field(85, ge=0)
    disk_percent: float = Field(90, ge=0)
    error_rate_percent: float = Field(1.0, ge=0)
    avg_response_ms: float = Field(3000, ge=0)
    p95_response_ms: float = Field(5000, ge=0)
    slow_request_ms: float = Field(5000, ge=0)
    backup_max_age_hours: float = Field(24, ge=0)
    backup_retention_days: int = Field(30, ge=0)
    rto_hours: float = Field(4, ge=0)
    availability_percent: float = Field(99.9, ge=0, le=100)
    min_compliance_score: float = Field(80, ge=0, le=100)
    llm_calls_per_day: int = Field(10000, ge=0)
    llm_error_percent: float = Field(5.0, ge=0, le=100)  # non-2xx LLM/embeddings calls
    key_max_age_days: int = Field(90, ge=0)
    tls_min_days: int = Field(14, ge=0)
    cache_hit_ratio: float = Field(0.5, ge=0, le=1)
    cache_idle_days: float = Field(30, ge=0)  # fractions allowed (a test uses seconds)
    temp_file_max_age_days: int = Field(7, ge=0)
    rate_limit_per_minute: int = Field(100, ge=1)
    auth_failure_burst: int = Field(20, ge=1)
    restore_tolerance_percent: float = Field(0.0, ge=0, le=100)
    restore_max_extract_mb: int = Field(20480, gt=0)
    backup_headroom_sets: int = Field(3, ge=0)
    warning_min_lines: int = Field(20, ge=0)  # warning_log_review never fails below this
    security_update_max_age_days: float = Field(30, ge=0)  # system_updates_applied
    live_log_max_mb: float = Field(100, gt=0)  # the app log being written (rotation stalled)
    temp_scan_max_files: int = Field(100000, ge=1)  # temp_files_cleanup stops (and fails) here
    secrets_max_files: int = Field(20000, ge=1)  # secrets_in_code stops (and fails) here
    attestation_grace_days: int = Field(7, ge=0)  # beyond 31 (monthly) or 92 (quarterly) days
    latency_trend_percent: float = Field(20, ge=0)  # latency_trend: this week vs last week
    resource_growth_points: float = Field(5, ge=0)  # resource_trend: % points a week
    forecast_horizon_days: float = Field(30, ge=0)  # capacity_forecast fails inside this
    endpoint_budget_ms: dict[str, float] = {}  # p95 per endpoint; unlisted: p95_response_ms


CRITICAL_PACKAGES = ["fastapi", "uvicorn", "anthropic", "langchain"]


class Packages(_Section):
    """The dependency and patch checks: which packages matter, where to look them up."""

    critical: list[str] = CRITICAL_PACKAGES  # outdated_critical_packages
    index_url: str = "https://pypi.org/pypi"  # a JSON API: <index_url>/<name>/json
    timeout_s: float = Field(15, gt=0)  # each index request; pip-audit's --timeout
    audit_service: str = "pypi"  # pip-audit's vulnerability service: pypi or osv
    osv_url: str = ""  # pip-audit --osv-url; "" = its default (api.osv.dev)
    waived_advisories: list[str] = []  # advisory ids or aliases accepted after review
    apt_config: str = ""  # an apt.conf passed as APT_CONFIG; "" = the host's apt setup

    @field_validator("audit_service")
    @classmethod
    def _known_service(cls, value: str) -> str:
        if value not in ("pypi", "osv"):
            raise ValueError(f"must be pypi or osv, got {value!r}")
        return value


class Redis(_Section):
    url: str = ""
    ttl_policy: dict[str, int] = {
        "policy:*": 3600,
        "template:*": 1800,
        "analysis:*": 900,
        "temp:*": 300,
    }
    timeout_s: float = Field(5, gt=0)  # connect and each command
    sample_keys: int = Field(100_000, ge=1)  # keys the survey inspects at most
    scan_max_s: float = Field(60, gt=0)  # the survey stops walking after this long

    @field_validator("ttl_policy")
    @classmethod
    def _positive_ttls(cls, value: dict[str, int]) -> dict[str, int]:
        for pattern, ttl in value.items():
            if ttl < 0:
                raise ValueError(f"{pattern!r}: a TTL is 0 (may live without expiry) or more")
        return value


class Load(_Section):
    users: int = Field(10, ge=1)
    spawn_rate: float = Field(2, gt=0)
    duration_s: float = Field(60, gt=0)
    max_error_percent: float = Field(1.0, ge=0)
    min_rps: float = Field(0.0, ge=0)
    workers: int = Field(0, ge=0)
    predeploy_users: int = Field(10, ge=1)  # enough for min_requests of each endpoint
    predeploy_duration_s: float = Field(60, gt=0)
    min_requests: int = Field(20, ge=1)  # completed per judged endpoint, else no verdict


TELEMETRY_NOISE = "Failed to send telemetry event"


class Logs(_Section):
    ignore_errors: list[str] = [TELEMETRY_NOISE]  # regexes searched in ERROR messages

    @field_validator("ignore_errors")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from None
        return value


GUIDE_LOGROTATE = [
    "daily",
    "rotate 30",
    "compress",
    "delaycompress",
    "missingok",
    "notifempty",
    "create 644 app app",
]


class Logrotate(_Section):
    policy: list[str] = GUIDE_LOGROTATE  # directives the app log's block must have

    @field_validator("policy")
    @classmethod
    def _directives(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.split():
                raise ValueError("an empty directive")
        return value


ROLES = ("app", "cache", "backup")


class Hosts(_Section):
    targets: list[str] = ["local://"]
    cpu_sample_s: float = Field(3.0, gt=0, le=60)
    ssh_config: str = ""  # testinfra's --ssh-config; "" = ssh's own (~/.ssh/config)
    ssh_identity_file: str = ""  # testinfra's --ssh-identity-file
    ansible_inventory: str = ""  # for ansible://group targets; testinfra's --ansible-inventory
    timeout_s: float = Field(10, gt=0, le=600)  # connect and each command, per host
    roles: dict[str, list[str]] = {}  # role -> targets (specs or labels); unlisted: every host

    @field_validator("targets")
    @classmethod
    def _some_target(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one host (local:// for this machine)")
        return value

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        return value


class Reports(_Section):
    dir: str = "reports"
    archive_key: str = ""  # Ed25519 PEM private key: each run signs the manifest's head
    archive_public_key: str = ""  # its PEM public key: `archive verify` requires the signature
    textfile: str = ""  # node_exporter textfile: a dir or a .prom path ({label}); "" = none


class History(_Section):
    url: str = "sqlite:///reports/history.sqlite"
    timeout_s: float = Field(10, gt=0, le=600)  # a lock or a server waited for, then a warning
    trend_min_points: int = Field(3, ge=1)  # per week, for latency_trend and resource_trend
    forecast_min_points: int = Field(7, ge=2)  # capacity_forecast's fit needs this many
    forecast_window_days: int = Field(30, ge=1)  # capacity_forecast fits this many days back


CHAT_TAG = "chat"  # alert URLs with this tag get warnings too, not only critical failures


class AlertUrl(_Section):
    """An alert URL with Apprise tags: `{url = "slack://...", tags = ["chat"]}`."""

    url: str = Field(min_length=1)
    tags: list[str] = []


class AlertThresholds(_Section):
    """The guide's alert manager: a failure past one of these is critical."""

    cpu_percent: float = Field(80, ge=0)
    memory_percent: float = Field(85, ge=0)
    disk_percent: float = Field(90, ge=0)
    error_rate_percent: float = Field(5, ge=0)
    response_time_ms: float = Field(5000, ge=0)


class Alerts(_Section):
    urls: list[str | AlertUrl] = []  # a plain string: critical failures only
    thresholds: AlertThresholds = AlertThresholds()
    timeout_s: float = Field(10, gt=0)  # each delivery and heartbeat ping, at most
    heartbeat_url: str = ""  # Healthchecks.io style: <url>/start, <url>, <url>/fail

    @field_validator("urls", mode="before")
    @classmethod
    def _url_or_table(cls, value: Any) -> Any:
        """Each entry: an Apprise URL, or a table with `url` and `tags` (a list of names)."""
        if not isinstance(value, list):
            return value
        for n, item in enumerate(value):
            if isinstance(item, str):
                continue
            if not isinstance(item, dict):
                raise ValueError(f"entry {n + 1}: an Apprise URL or {{ url = ..., tags = [...] }}")
            unknown = set(item) - {"url", "tags"}
            if unknown or not isinstance(item.get("url"), str) or not item["url"]:
                why = f"unknown key {sorted(unknown)[0]!r}" if unknown else "no url"
                raise ValueError(f"entry {n + 1}: {why} (a table takes url and tags)")
            tags = item.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError(f'entry {n + 1}: tags is a list of names, e.g. ["chat"]')
        return value

    def targets(self) -> list[AlertUrl]:
        """Every alert URL with its tags (a plain string has none)."""
        return [AlertUrl(url=u) if isinstance(u, str) else u for u in self.urls]


class Config(_Section):
    service: Service = Service()
    paths: Paths = Paths()
    thresholds: Thresholds = Thresholds()
    redis: Redis = Redis()
    packages: Packages = Packages()
    load: Load = Load()
    logs: Logs = Logs()
    logrotate: Logrotate = Logrotate()
    hosts: Hosts = Hosts()
    reports: Reports = Reports()
    history: History = History()
    alerts: Alerts = Alerts()


class Loaded(BaseModel):
    """A validated config and where it came from (path None: built-in defaults)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: Config
    path: Path | None
    sha256: str | None


def find_path(cli_path: str | None, cwd: Path) -> Path | None:
    """The config file to read: --ops-config, then $OPSCHECK_CONFIG, then ./opscheck.toml."""
    if cli_path:
        return Path(cli_path).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    local = cwd / DEFAULT_NAME
    return local if local.is_file() else None


def load(path: Path | None, overrides: dict[str, dict[str, Any]] | None = None) -> Loaded:
    """Read, expand and validate the config file; `overrides` come from the command line."""
    raw: dict[str, Any] = {}
    digest = None
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        digest = hashlib.sha256(data).hexdigest()
        try:
            raw = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    expanded: dict[tuple[str, ...], list[str]] = {}
    raw = _expand(raw, path, (), expanded)
    scrub.learn(v for values in expanded.values() for v in values if scrub.may_be_secret(v))
    for section, values in (overrides or {}).items():
        if not isinstance(raw.get(section, {}), dict):
            continue
        raw.setdefault(section, {}).update(values)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, set(expanded))) from None
    scrub.learn(_url_secrets(config))
    return Loaded(config=config, path=path.resolve() if path else None, sha256=digest)


def _expand(
    value: Any, path: Path | None, loc: tuple[str, ...], expanded: dict[tuple[str, ...], list[str]]
) -> Any:
    """Replace `${NAME}` in every string with the environment's value; `expanded` gets the
    keys that took one, with the values taken (secrets, for the scrubber)."""
    if isinstance(value, dict):
        return {k: _expand(v, path, (*loc, k), expanded) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path, loc, expanded) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{path}: {_where(loc)}: environment variable {name} is not set")
        expanded.setdefault(loc, []).append(os.environ[name])
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


def _url_secrets(config: Config) -> list[str]:
    """The passwords of every URL and host spec in the config, and every alert URL whole
    (a webhook URL is itself the credential)."""
    urls = [config.service.base_url, *config.service.base_urls]
    urls += [config.redis.url, config.history.url]
    alerts = [t.url for t in config.alerts.targets()]
    alerts += [config.alerts.heartbeat_url] if config.alerts.heartbeat_url else []
    urls += [*alerts, *config.hosts.targets]
    return [*alerts, *(s for url in urls for s in scrub.url_secrets(url))]


def _where(loc: tuple[Any, ...]) -> str:
    keys = [str(k) for k in loc if not isinstance(k, int)]
    if len(keys) >= 2:
        return f"[{keys[0]}] {'.'.join(keys[1:])}"
    return f"[{keys[0]}]" if keys else "top level"


def _describe(
    exc: ValidationError, path: Path | None, from_env: set[tuple[str, ...]] = frozenset()
) -> str:
    """One line for the first problem, naming the file, the key and the kind of problem,
    never a value that came from the environment (`from_env`: keys that took one)."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    source = path or "built-in config"
    if err["type"] == "extra_forbidden":
        return f"{source}: {_where(loc)}: unknown key"
    got = err.get("input")
    # Strings may hold an expanded secret: name their type, never their text.
    shown = repr(got) if isinstance(got, int | float | bool) else f"a {type(got).__name__}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    msg = _INPUT_VALUE.sub("", err["msg"].removeprefix("Value error, "))
    if tuple(k for k in loc if not isinstance(k, int)) in from_env:
        # Validators say the kind of problem first, details (which may quote it) after " (".
        kind = _QUOTED.sub("'…'", msg.split(" (", 1)[0])
        kind = re.sub(r"=\S+", "=…", kind)
        msg = f"{kind} (the value comes from the environment: not shown)"
    msg = scrub.scrub(msg[:1].lower() + msg[1:])
    if err["type"] == "value_error":
        return f"{source}: {_where(loc)}: {msg}{more}"
    return f"{source}: {_where(loc)}: {msg}, got {shown}{more}"
