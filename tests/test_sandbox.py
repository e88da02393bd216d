"""The sandbox replica is faithful to SERVICE.md, and `down` leaves nothing running."""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import tarfile
import tomllib
from datetime import datetime
from pathlib import Path

import pytest
import requests

from opscheck.sandbox import control
from opscheck.sandbox.layout import KINDS

LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - [\w.]+ - (INFO|WARNING|ERROR|DEBUG|CRITICAL) - "
)
STAMPED = re.compile(r"^(chroma_db|template_data|config|logs)_(\d{8}_\d{6})\.(tar\.gz|json)$")


def base_url(sb) -> str:
    return tomllib.loads(sb.config.read_text())["service"]["base_url"]


def test_cli_up_status_down_leaves_nothing_running(tmp_path):
    root = tmp_path / "sb"
    cmd = [sys.executable, "-m", "opscheck.sandbox"]
    up = subprocess.run(
        [*cmd, "up", "--dir", str(root), "--latency-scale", "0.01"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == str(root / "opscheck.toml")
    pid = int((root / "run" / "server.pid").read_text())
    pids = {p.stem: int(p.read_text()) for p in (root / "run").glob("*.pid")}
    assert set(pids) == {"server", "server-2", "balancer", "redis"}  # two replicas by default
    service = tomllib.loads((root / "opscheck.toml").read_text())["service"]
    url = service["base_url"]
    assert url.startswith("http://127.0.0.1:")
    for each in (url, *service["base_urls"]):
        assert requests.get(each + "/health", timeout=5).json()["status"] == "healthy"
    status = subprocess.run([*cmd, "status", "--dir", str(root)], capture_output=True, text=True)
    assert f"server: pid {pid} running" in status.stdout
    redis_pid = int((root / "run" / "redis.pid").read_text())
    assert f"redis: pid {redis_pid} running" in status.stdout
    down = subprocess.run([*cmd, "down", "--dir", str(root)], capture_output=True, text=True)
    assert down.stdout.startswith("stopped ") and f"server (pid {pid})" in down.stdout
    assert f"redis (pid {redis_pid})" in down.stdout
    for stopped in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(stopped, 0)
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=2)
    again = subprocess.run([*cmd, "down", "--dir", str(root)], capture_output=True, text=True)
    assert "nothing was running" in again.stdout


def test_cli_up_help_lists_every_fault(tmp_path):
    """Before: a ValueError traceback (argparse %-formats help texts; faults carry '5 %')."""
    from opscheck.sandbox.faults import FAULTS

    proc = subprocess.run(
        [sys.executable, "-m", "opscheck.sandbox", "up", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    listed = lines[lines.index("faults:") + 1 :]
    assert [line.split()[0] for line in listed] == list(FAULTS)
    for line, fault in zip(listed, FAULTS.values(), strict=True):
        assert line.endswith(f"  {fault.what}"), line
    assert any("%" in f.what for f in FAULTS.values()), "the case that crashed is still listed"


def test_up_refuses_to_wipe_a_directory_that_is_not_a_sandbox(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="is not empty and is not a sandbox"):
        control.up(tmp_path, control.Options(faults=("down",)))
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_unknown_fault_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown fault 'nope'"):
        control.up(tmp_path / "x", control.Options(faults=("nope",)))


def test_cpu_hog_processes_are_bounded_and_stopped(sandbox_factory):
    sb = sandbox_factory("cpu-hog")
    pids = [int(p.read_text()) for p in (sb.root / "run").glob("cpu-hog-*.pid")]
    assert len(pids) == (os.cpu_count() or 1)
    control.down(sb.root)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_app_dir_layout(golden):
    app = golden / "app"
    assert stat.S_IMODE((app / ".env").stat().st_mode) == 0o600
    env = (app / ".env").read_text()
    assert re.search(r"^ANTHROPIC_API_KEY=sk-ant-\S{20,}$", env, re.M)
    assert re.search(r"^OPENAI_API_KEY=sk-\S{20,}$", env, re.M)
    for d in ("data", "logs", "chroma_db"):
        assert stat.S_IMODE((app / d).stat().st_mode) == 0o755
    data = json.loads((app / "data/kakao_template_vectordb_data.json").read_text())
    assert len(data["templates"]) == 449
    assert set(data) == {"templates", "patterns", "success_indicators", "metadata"}
    assert set(data["templates"][0]) == {"id", "text", "metadata"}
    size = (app / "data/kakao_template_vectordb_data.json").stat().st_size
    assert 400_000 < size < 700_000, size
    assert (app / "requirements.txt").read_text().startswith("fastapi==")


def test_chroma_store_looks_like_chroma(golden):
    chroma = golden / "app" / "chroma_db"
    con = sqlite3.connect(f"file:{chroma / 'chroma.sqlite3'}?mode=ro", uri=True)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert len(tables) == 17, sorted(tables)
    assert {
        "collections",
        "segments",
        "embeddings",
        "embedding_metadata",
        "embeddings_queue",
        "migrations",
        "tenants",
        "databases",
        "embedding_fulltext_search",
    } <= tables
    assert con.execute("SELECT name FROM collections").fetchall() == [("langchain",)]
    assert con.execute("SELECT count(*) FROM embeddings").fetchone() == (42,)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    segments = [p for p in chroma.iterdir() if p.is_dir()]
    assert len(segments) == 1 and re.fullmatch(r"[0-9a-f-]{36}", segments[0].name)
    assert {p.name for p in segments[0].iterdir()} == {
        "header.bin",
        "data_level0.bin",
        "length.bin",
        "link_lists.bin",
    }


def test_logs_are_in_the_service_format_and_rotated(golden):
    logs = golden / "app" / "logs"
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["app.log", "app.log.1", *[f"app.log.{n}.gz" for n in range(2, 8)]]
    text = gzip.decompress((logs / "app.log.3.gz").read_bytes())
    assert b"\xff" in text, "one undecodable byte, as real logs have"
    lines = text.decode("utf-8", "replace").splitlines()
    stamped = [line for line in lines if LOG_LINE.match(line)]
    assert len(stamped) > 2000
    assert all(LOG_LINE.match(line) or not line[:4].isdigit() for line in lines)
    joined = "\n".join(lines)
    for needle in (
        "src.api.main - INFO - Request: POST /api/v1/templates/generate",
        "src.api.main - INFO - Response: 200 - ",
        "chromadb.telemetry.product.posthog - ERROR - Failed to send telemetry event",
        "피자 주문 완료 안내",
    ):
        assert needle in joined


def test_backups_are_thirty_nightly_sets_built_like_the_seed_script(golden):
    backups = golden / "backups" / "kakao-template"
    stamps: dict[str, set[str]] = {}
    for p in backups.iterdir():
        m = STAMPED.match(p.name)
        assert m, p.name
        stamps.setdefault(m.group(2), set()).add(m.group(1))
    assert len(stamps) == 30
    assert all(kinds == set(KINDS) for kinds in stamps.values())
    newest = max(stamps)
    with tarfile.open(backups / f"chroma_db_{newest}.tar.gz") as tar:
        names = tar.getnames()
    assert names[0] == "app/chroma_db" and "app/chroma_db/chroma.sqlite3" in names
    with tarfile.open(backups / f"config_{newest}.tar.gz") as tar:
        assert {".env", "src/config/settings.py", "requirements.txt"} <= set(tar.getnames())
    with tarfile.open(backups / f"logs_{newest}.tar.gz") as tar:
        assert "logs/app.log" in tar.getnames()
    stamp_time = datetime.strptime(newest, "%Y%m%d_%H%M%S").timestamp()
    assert abs((backups / f"chroma_db_{newest}.tar.gz").stat().st_mtime - stamp_time) < 3600


def test_api_replica_shapes(sandbox):
    url = base_url(sandbox)
    h = requests.get(url + "/health", timeout=5)
    assert h.status_code == 200 and "X-Process-Time" in h.headers
    assert set(h.json()) == {"status", "timestamp", "version", "components"}
    assert set(h.json()["components"]) == {"llm_client", "vector_database", "workflow"}
    g = requests.post(
        url + "/api/v1/templates/generate",
        timeout=10,
        json={
            "user_request": "피자 주문 완료 안내 메시지를 만들어 주세요",
            "business_type": "음식점",
            "required_variables": ["주문번호"],
        },
    )
    body = g.json()
    assert g.status_code == 200 and body["success"] is True
    assert set(body) == {"success", "template", "compliance", "analysis", "workflow_info"}
    # as the real service: required_variables never reach the workflow; the analyzer
    # picks 수신자명 (and keyword variables: none in this request)
    assert "#{주문번호}" not in body["template"]["text"]
    assert "#{수신자명}" in body["template"]["text"]
    assert body["template"]["variables"] == ["수신자명"]
    assert set(body["workflow_info"]) == {
        "iterations",
        "errors",
        "policy_sources",
        "processing_time_seconds",
    }
    assert 0 <= body["compliance"]["score"] <= 100
    v = requests.post(
        url + "/api/v1/templates/validate",
        timeout=10,
        json={"template_text": "#{a}", "button_text": "#{b} 보기"},
    ).json()
    assert set(v["detailed_scores"]) == {
        "basic_rules",
        "blacklist_check",
        "variable_usage",
        "llm_analysis",
    }
    assert not v["compliance"]["is_compliant"]
    bad = requests.post(
        url + "/api/v1/templates/generate", json={"user_request": "짧음"}, timeout=5
    )
    assert bad.status_code == 422 and "detail" in bad.json()
    missing = requests.get(url + "/nope", timeout=5)
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    stats = requests.get(url + "/stats", timeout=5).json()
    assert stats["successful_generations"] == 1


def generate(sb, user_request: str) -> tuple[dict, list[str]]:
    """One generation; (its answer, the app log lines the replica wrote meanwhile)."""
    log = sb.root / "app" / "logs" / "app.log"
    size = log.stat().st_size
    body = requests.post(
        base_url(sb) + "/api/v1/templates/generate", json={"user_request": user_request}, timeout=10
    ).json()
    with open(log, "rb") as f:
        f.seek(size)
        return body, f.read().decode("utf-8").splitlines()


def test_generation_picks_variables_like_the_real_analyzer(sandbox):
    body, _ = generate(sandbox, "치과 진료 예약 확정 안내, 전화번호와 예약 일정 포함")
    assert body["template"]["variables"] == ["수신자명", "날짜", "연락처", "코드"]
    for name in body["template"]["variables"]:
        assert f"#{{{name}}}" in body["template"]["text"]


def test_generation_writes_the_real_services_log_lines(sandbox):
    body, lines = generate(sandbox, "피자 주문 완료 안내 메시지를 만들어 주세요")
    assert body["template"]["variables"] == ["수신자명"]
    assert lines and all(LOG_LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert lines[0].endswith(" - src.api.main - INFO - Request: POST /api/v1/templates/generate")
    assert re.search(r" - src\.api\.main - INFO - Response: 200 - \d+\.\d{3}s$", lines[-1])
    ok = 'httpx - INFO - HTTP Request: POST https://api.anthropic.com/v1/messages "HTTP/1.1 200 OK"'
    assert text.count(ok) == 3
    assert text.count('v1/embeddings "HTTP/1.1 200 OK"') == 2
    assert " - ERROR - " not in text


@pytest.mark.parametrize(
    ("fault", "status", "kind", "attempts"),
    [
        ("llm-down", "500 Internal Server Error", "api_error", 3),
        ("llm-401", "401 Unauthorized", "authentication_error", 1),
        ("llm-overloaded", "529 <none>", "overloaded_error", 3),
    ],
)
def test_llm_faults_fail_like_the_real_llm(sandbox_factory, fault, status, kind, attempts):
    """Each of the three LLM calls fails (5xx/529 retried twice by the SDK), the LLM client
    logs its ERROR, /health stays healthy and generation answers the real fallback body."""
    sb = sandbox_factory(fault)
    body, lines = generate(sb, "피자 주문 완료 안내 메시지를 만들어 주세요")
    assert all(LOG_LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert text.count(f'api.anthropic.com/v1/messages "HTTP/1.1 {status}"') == 3 * attempts
    assert text.count("anthropic._base_client - INFO - Retrying request to /v1/messages") == (
        3 * (attempts - 1)
    )
    errors = [line for line in lines if " - src.utils.llm_client - ERROR - " in line]
    assert len(errors) == 6
    code = status.split()[0]
    assert (
        f"Error generating response: Error code: {code} - "
        f"{{'type': 'error', 'error': {{'type': '{kind}', 'message': '"
    ) in errors[0]
    assert body["template"]["text"].startswith("안녕하세요 템플릿 생성에 실패했습니다.\n\n※ ")
    assert body["template"]["variables"] == []
    assert body["compliance"]["score"] == 85.5 and body["compliance"]["is_compliant"] is True
    assert "컴플라이언스 검사 실패" in body["compliance"]["violations"]
    assert body["analysis"]["message_purpose"] == "일반 안내"
    assert body["workflow_info"]["errors"] == [] and body["workflow_info"]["policy_sources"]
    assert requests.get(base_url(sb) + "/health", timeout=5).json()["status"] == "healthy"


def test_silent_fallback_serves_the_fallback_body_with_a_healthy_log(sandbox_factory):
    sb = sandbox_factory("silent-fallback")
    body, lines = generate(sb, "피자 주문 완료 안내 메시지를 만들어 주세요")
    assert body["template"]["text"] == (
        "안녕하세요 템플릿 생성에 실패했습니다.\n\n"
        "※ 이 메시지는 주문을 하신 분들께 발송되는 정보성 안내입니다."
    )
    assert body["compliance"]["violations"] == [
        "정보성 메시지 표시가 없습니다",
        "컴플라이언스 검사 실패",
    ]
    assert " - ERROR - " not in "\n".join(lines)


def test_embeddings_401_gives_no_policy_sources(sandbox_factory):
    body, lines = generate(
        sandbox_factory("embeddings-401"), "피자 주문 완료 안내 메시지를 만들어 주세요"
    )
    assert body["workflow_info"]["policy_sources"] == [] and body["workflow_info"]["errors"] == []
    assert "#{수신자명}" in body["template"]["text"]
    assert "\n".join(lines).count('v1/embeddings "HTTP/1.1 401 Unauthorized"') == 2


def test_errors_fault_fails_exactly_the_configured_share(sandbox_factory):
    sb = sandbox_factory("errors")
    url = base_url(sb) + "/api/v1/templates/validate"
    codes = [
        requests.post(url, json={"template_text": "안녕하세요 #{고객명}님"}, timeout=5).status_code
        for _ in range(40)
    ]
    assert codes.count(500) == 2 and codes.count(200) == 38
    assert requests.get(base_url(sb) + "/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("fault", "probe"),
    [
        ("env-mode", lambda r: stat.S_IMODE((r / "app/.env").stat().st_mode) == 0o644),
        ("dir-mode", lambda r: stat.S_IMODE((r / "app/logs").stat().st_mode) == 0o777),
        ("stale-backup", lambda r: len(list((r / "backups/kakao-template").iterdir())) == 112),
        (
            "error-heavy-log",
            lambda r: (
                sum(
                    (r / "app/logs" / n).read_text().count("Request failed")
                    for n in ("app.log", "app.log.1")
                )
                > 20
            ),
        ),
    ],
)
def test_file_faults_change_what_they_say(sandbox_factory, fault, probe):
    sb = sandbox_factory("down", fault)
    assert probe(sb.root)


def test_symlinked_chroma_links_the_store_and_archives_only_the_link(sandbox_factory):
    sb = sandbox_factory("down", "symlinked-chroma")
    link = sb.root / "app" / "chroma_db"
    assert link.is_symlink() and os.readlink(link) == "../volumes/chroma_db"
    assert (link / "chroma.sqlite3").is_file(), "the live store still works through the link"
    archives = sorted((sb.root / "backups/kakao-template").glob("chroma_db_*.tar.gz"))
    assert len(archives) == 30
    for path in archives:
        with tarfile.open(path) as tar:
            assert [(m.name, m.issym(), m.linkname) for m in tar.getmembers()] == [
                ("app/chroma_db", True, "../volumes/chroma_db")
            ]
    stamp = datetime.strptime(archives[-1].name[10:25], "%Y%m%d_%H%M%S")
    assert abs(archives[-1].stat().st_mtime - stamp.timestamp()) < 60, "mtimes kept"


def test_empty_and_tiny_backup_faults(sandbox_factory):
    sb = sandbox_factory("down", "empty-backup", "tiny-backup")
    backups = sb.root / "backups/kakao-template"
    *_, before, newest = sorted(backups.glob("chroma_db_*.tar.gz"))
    assert newest.stat().st_size == 0 and before.stat().st_size > 100_000
    stamp = datetime.strptime(newest.name[10:25], "%Y%m%d_%H%M%S")
    assert abs(newest.stat().st_mtime - stamp.timestamp()) < 60, "mtime kept"
    *_, before, newest = sorted(backups.glob("template_data_*.json"))
    assert len(json.loads(newest.read_text())["templates"]) == 1
    assert newest.stat().st_size * 10 < before.stat().st_size


def test_corrupt_backup_truncates_the_newest_chroma_archive(sandbox_factory):
    sb = sandbox_factory("down", "corrupt-backup")
    newest = sorted((sb.root / "backups/kakao-template").glob("chroma_db_*.tar.gz"))[-1]
    with pytest.raises((EOFError, tarfile.ReadError, OSError)), tarfile.open(newest) as tar:
        tar.getmembers()


def test_config_written_by_up_is_valid(sandbox):
    from opscheck import config as cfgmod

    c = cfgmod.load(sandbox.config).config
    assert Path(c.paths.env_file) == sandbox.root / "app" / ".env"
    assert c.paths.backup_dir == str(sandbox.root / "backups" / "kakao-template")
