"""The config file: defaults, validation, ${ENV} expansion, and how a run finds it."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from opscheck import config as cfgmod
from tests.conftest import REPO, run_pytest


def write(tmp_path: Path, text: str, name: str = "opscheck.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_the_guides_values():
    c = cfgmod.load(None).config
    assert c.thresholds.cpu_percent == 80 and c.thresholds.memory_percent == 85
    assert c.thresholds.disk_percent == 90 and c.thresholds.error_rate_percent == 1.0
    assert c.thresholds.backup_max_age_hours == 24 and c.thresholds.rto_hours == 4
    assert c.service.base_url == "http://127.0.0.1:8000" and c.service.user == "app"
    assert c.paths.env_file == "/app/.env"
    assert c.paths.backup_dir == "/backups/kakao-template"
    assert c.redis.ttl_policy["template:*"] == 1800
    assert c.hosts.targets == ["local://"]
    assert c.reports.dir == "reports"


def test_example_config_matches_the_defaults():
    """opscheck.example.toml documents every key with its default value."""
    text = (REPO / "opscheck.example.toml").read_text()
    assert tomllib.loads(text), "the example parses as it is"
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", text)
    example = tomllib.loads(uncommented)
    defaults = cfgmod.Config().model_dump()
    for section, values in example.items():
        for key, value in values.items():
            assert defaults[section][key] == value, f"[{section}] {key}"
    for section, values in defaults.items():
        missing = set(values) - set(example.get(section, {}))
        assert not missing, f"[{section}] keys not in the example: {missing}"


def test_paths_below_app_dir_follow_it(tmp_path):
    c = cfgmod.load(write(tmp_path, '[paths]\napp_dir = "/srv/kakao"\n')).config
    assert c.paths.env_file == "/srv/kakao/.env"
    assert c.paths.app_log == "/srv/kakao/logs/app.log"
    assert c.paths.chroma_dir == "/srv/kakao/chroma_db"
    assert c.paths.template_data == "/srv/kakao/data/kakao_template_vectordb_data.json"


def test_file_names_only_what_differs(tmp_path):
    loaded = cfgmod.load(write(tmp_path, "[thresholds]\ncpu_percent = 70\n"))
    assert loaded.config.thresholds.cpu_percent == 70
    assert loaded.config.thresholds.memory_percent == 85
    assert loaded.sha256 and len(loaded.sha256) == 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[thresholds]\ncpu_percnt = 70\n", "[thresholds] cpu_percnt: unknown key"),
        ("[servce]\nbase_url = 'x'\n", "[servce]: unknown key"),
        ('[thresholds]\ncpu_percent = "80"\n', "[thresholds] cpu_percent: input should be"),
        ("[load]\nusers = 1.5\n", "[load] users: input should be a valid integer, got 1.5"),
        ('[hosts]\ntargets = "local://"\n', "[hosts] targets: input should be a valid list"),
        ("[thresholds]\ndisk_percent = -1\n", "[thresholds] disk_percent: input should be"),
        ("[thresholds\n", "invalid TOML: Expected ']'"),
        ("[service]\nbase_url = \n", "invalid TOML"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.load(path)
    message = str(err.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message


def test_unreadable_or_missing_file(tmp_path):
    with pytest.raises(cfgmod.ConfigError, match=r"cannot read config .*: No such file"):
        cfgmod.load(tmp_path / "nope.toml")
    with pytest.raises(cfgmod.ConfigError, match=r"cannot read config .*: Is a directory"):
        cfgmod.load(tmp_path)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(cfgmod.ConfigError, match="not UTF-8 text"):
        cfgmod.load(binary)


def test_env_references_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret-pw")
    path = write(tmp_path, '[redis]\nurl = "redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0"\n')
    assert cfgmod.load(path).config.redis.url == "redis://:s3cret-pw@127.0.0.1:6379/0"


def test_missing_env_reference_names_key_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    path = write(tmp_path, '[alerts]\nurls = ["slack://${NO_SUCH_VAR}"]\n')
    with pytest.raises(cfgmod.ConfigError, match=r"\[alerts\] urls: environment variable NO_SUCH"):
        cfgmod.load(path)


def test_wrong_type_never_echoes_an_expanded_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TIMEOUT", "sk-ant-verysecretvalue123")
    path = write(tmp_path, '[service]\ntimeout_s = "${SECRET_TIMEOUT}"\n')
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.load(path)
    assert "verysecret" not in str(err.value) and "got a str" in str(err.value)


# ---- how a run finds and rejects its config (real pytest runs) ---------------------------


def test_typo_key_stops_the_run_with_exit_4(tmp_path):
    path = write(tmp_path, "[thresholds]\ncpu_percnt = 70\n")
    reports = tmp_path / "reports"
    proc = run_pytest(["-m", "daily", "--ops-config", str(path), "--reports-dir", str(reports)])
    assert proc.returncode == 4
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors == [f"ERROR: {path}: [thresholds] cpu_percnt: unknown key"]
    assert "passed" not in proc.stdout and "failed" not in proc.stdout
    assert not reports.exists(), "no report for a run that never started"


@pytest.mark.parametrize("form", ["two-tokens", "equals", "env", "cwd"])
def test_config_found_by_every_documented_route(tmp_path, form):
    """`--ops-config PATH` (PATH outside the checkout), `--ops-config=PATH`,
    $OPSCHECK_CONFIG and ./opscheck.toml all reach the plugin, with the suite's
    pytest.ini still in force (markers, testpaths, rootdir)."""
    etc = tmp_path / "etc" / "opscheck"
    etc.mkdir(parents=True)
    path = write(etc, '[service]\nbase_url = "http://127.0.0.1:9"\ntimeout_s = 1\n')
    reports = tmp_path / "reports"
    args = ["-m", "daily", "-k", "health_endpoint_up", "--reports-dir", str(reports)]
    env, cwd = None, REPO
    if form == "two-tokens":
        args += ["--ops-config", str(path)]
    elif form == "equals":
        args += [f"--ops-config={path}"]
    elif form == "env":
        env = {"OPSCHECK_CONFIG": str(path)}
    else:
        cwd = etc
        args += ["--rootdir", str(REPO), "-c", str(REPO / "pytest.ini"), str(REPO / "checks")]
    proc = run_pytest(args, cwd=cwd, env=env)
    assert f"rootdir: {REPO}" in proc.stdout, proc.stdout + proc.stderr
    assert f"config {path}" in proc.stdout
    assert re.search(r"\b1 failed, \d+ deselected", proc.stdout), proc.stdout
    assert proc.returncode == 1
    assert len(list((reports / "daily").glob("*.json"))) == 1


def test_two_token_form_respects_explicit_rootdir(tmp_path):
    """An operator's own --rootdir is kept; the suite's ini still applies."""
    path = write(tmp_path, '[service]\nbase_url = "http://127.0.0.1:9"\n')
    proc = run_pytest(
        ["-m", "daily", "--ops-config", str(path), "--rootdir", str(REPO), "--co", "-q"]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checks/daily/test_service.py::test_health_endpoint_up" in proc.stdout


def test_base_url_and_reports_dir_options_override_the_file(tmp_path):
    path = write(tmp_path, '[service]\nbase_url = "http://127.0.0.1:9"\n')
    reports = tmp_path / "elsewhere"
    proc = run_pytest(
        [
            "-m",
            "daily",
            "-k",
            "health_endpoint_up",
            "--ops-config",
            str(path),
            "--base-url",
            "http://127.0.0.1:7",
            "--reports-dir",
            str(reports),
        ]
    )
    assert "target http://127.0.0.1:7" in proc.stdout
    assert list((reports / "daily").glob("*.html"))


def test_permission_denied_config(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file; covered by the directory case above")
    path = write(tmp_path, "")
    path.chmod(0)
    with pytest.raises(cfgmod.ConfigError, match="Permission denied"):
        cfgmod.load(path)


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("[service]\ntimezone", "hunter2", "[service] timezone: unknown time zone"),
        ("[service]\ntimezone", "/etc/hunter2", "[service] timezone: unknown time zone"),
        ("[paths]\naccess_log_format", "hunter2", "[paths] access_log_format: '…' is not a"),
        ("[paths]\naccess_log_format", '"$status hunter2', "format: unterminated quote in '…'"),
        ("[paths]\naccess_log_format", "escape=hunter2 $x", "[paths] access_log_format: unk"),
        ("[logs]\nignore_errors", "(hunter2", "[logs] ignore_errors: not a regular expression"),
        ("[service]\ntimeout_s", "hunter2", "[service] timeout_s: input should be a valid num"),
        ("[load]\nusers", "hunter2", "[load] users: input should be a valid integer"),
    ],
)
def test_config_errors_never_echo_a_value_from_the_environment(
    tmp_path, monkeypatch, key, value, kind
):
    """The issue's case: `${VAR}` in service.timezone gave "unknown time zone 'hunter2'".
    The error names the key and the kind of problem, never the value, even one the
    scrubber would not learn (an absolute path)."""
    from opscheck import scrub

    scrub.forget()
    monkeypatch.setenv("CANARY", value)
    wrapped = '["${CANARY}"]' if "ignore_errors" in key else '"${CANARY}"'
    path = write(tmp_path, f"{key} = {wrapped}\n")
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.load(path)
    message = str(err.value)
    scrub.forget()
    assert kind in message and "hunter2" not in message, message
    assert "from the environment: not shown" in message and "\n" not in message


def test_literal_config_errors_keep_their_detail(tmp_path):
    """A value written in the file itself is the operator's own: its error may quote it."""
    path = write(tmp_path, '[paths]\naccess_log_format = "fancy"\n')
    with pytest.raises(cfgmod.ConfigError, match="'fancy' is not a format name"):
        cfgmod.load(path)
