"""The sandbox's logs: the app log and nginx access log a day of traffic leaves.

Each request writes the lines the real service writes (shared/SERVICE.md: main,
agents, httpx, chromadb telemetry ERROR noise, Korean text, the odd traceback) and
one nginx combined line with `$request_time` (client side: server time plus the
wait in the event loop's queue). `Traffic` knobs make the faults: more errors,
slower generations, a spike, a scanner, a leaked key, a new error, a warning storm.
"""

from __future__ import annotations

import gzip
import os
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from opscheck.sandbox.applog import ANTHROPIC, OPENAI_EMBEDDINGS, stamp

REQUESTS = [
    "피자 주문 완료 안내",
    "온라인 강의 수강 신청 완료",
    "치과 진료 예약 확정",
    "쇼핑몰 상품 배송 시작",
    "헬스장 회원권 등록 완료",
]
TELEMETRY = (
    "chromadb.telemetry.product.posthog - ERROR - Failed to send telemetry event "
    "{event}: capture() takes 1 positional argument but 3 were given"
)
LLM = f'httpx - INFO - HTTP Request: POST {ANTHROPIC} "HTTP/1.1 {{status}}"'
EMBEDDINGS = f'httpx - INFO - HTTP Request: POST {OPENAI_EMBEDDINGS} "HTTP/1.1 {{status}}"'
RETRY = "anthropic._base_client - INFO - Retrying request to /v1/messages in {secs:.6f} seconds"
LLM_ERROR = (
    "src.utils.llm_client - ERROR - Error generating response: Error code: {code} - "
    "{{'type': 'error', 'error': {{'type': '{kind}', 'message': '{message}'}}}}"
)
LLM_FAILURES = {  # status line, error type, message: as Anthropic answers them
    401: ("401 Unauthorized", "authentication_error", "invalid x-api-key"),
    500: ("500 Internal Server Error", "api_error", "Internal server error"),
    529: ("529 ", "overloaded_error", "Overloaded"),
}
WORKFLOW = [  # what one generation's agents log besides the calls (about 50 lines in all)
    "src.workflow.langgraph_workflow - INFO - 워크플로우 시작: request_analysis",
    "src.agents.request_analyzer - INFO - 요청 유형: 안내, 업종: 기타",
    "src.agents.request_analyzer - INFO - 추출된 변수: ['수신자명']",
    "src.agents.request_analyzer - INFO - 분석 완료: {request}",
    "src.workflow.langgraph_workflow - INFO - 노드 완료: request_analysis -> policy_retrieval",
    "src.agents.policy_retriever - INFO - 정책 검색 쿼리 생성: {n}개",
    "src.agents.policy_retriever - INFO - 검색된 정책: operations.md, audit.md, content-guide.md",
    "src.agents.policy_retriever - INFO - 관련 정책 {n}건 선택",
    "src.workflow.langgraph_workflow - INFO - 노드 완료: policy_retrieval -> template_generation",
    "src.agents.template_generator - INFO - 템플릿 생성 시작 (시도 1)",
    "src.agents.template_generator - INFO - 유사 템플릿 {n}개 참조",
    "src.agents.template_generator - INFO - 변수 치환 규칙 적용",
    "src.agents.template_generator - INFO - 버튼 제안: 자세히 보기",
    "src.workflow.langgraph_workflow - INFO - 노드 완료: template_generation -> compliance_check",
    "src.agents.compliance_checker - INFO - 기본 규칙 검사 통과",
    "src.agents.compliance_checker - INFO - 금지어 검사: 0건",
    "src.agents.compliance_checker - INFO - 변수 사용 검사: {n}개 변수",
    "src.agents.compliance_checker - INFO - LLM 분석 점수 반영",
    "src.workflow.langgraph_workflow - INFO - 노드 완료: compliance_check -> end",
    "src.workflow.langgraph_workflow - INFO - 반복 횟수: 1",
    "src.utils.performance_monitor - INFO - request_analysis: 0.{n}s",
    "src.utils.performance_monitor - INFO - policy_retrieval: 0.{n}s",
    "src.utils.performance_monitor - INFO - template_generation: 1.{n}s",
    "src.utils.performance_monitor - INFO - compliance_check: 0.{n}s",
    "src.utils.cache - INFO - 캐시 저장: template (TTL 1800s)",
    "src.utils.cache - INFO - 캐시 저장: analysis (TTL 900s)",
    "src.api.routes.templates - INFO - 템플릿 생성 성공",
    "src.api.routes.templates - INFO - 응답 구성 완료",
    "src.workflow.langgraph_workflow - INFO - 워크플로우 종료: success",
    "src.utils.performance_monitor - INFO - 메모리 사용량: {n}0.5MB",
    "src.agents.template_generator - INFO - 최종 템플릿 길이: {n}8자",
    "src.agents.compliance_checker - INFO - 승인 가능성: 높음",
    "src.api.routes.templates - INFO - 통계 업데이트",
    "src.utils.cache - INFO - 캐시 조회: miss",
]
HOURLY = [1, 1, 1, 1, 1, 2, 4, 6, 9, 10, 10, 9, 8, 9, 10, 10, 9, 8, 6, 5, 4, 3, 2, 1]
CLIENTS = [f"203.0.113.{n}" for n in range(10, 60)]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
SCANNER = "198.51.100.66"
LEAKED_KEY = "sk-ant-api03-LEAKEDkeyLEAKEDkeyLEAKEDkey0123456789abcdef"
# FastAPI's ResponseValidationError: its text spans lines, the duration ends the last one
MULTILINE_FAILURE = (
    "Request failed: 1 validation error:\n"
    "  {{'type': 'list_type', 'loc': ('response', 'template', 'variables'), "
    "'msg': 'Input should be a valid list', 'input': None}}\n"
    '  File "/app/src/api/routes/templates.py", line 88, in generate_template - {secs:.3f}s'
)


@dataclass(frozen=True)
class Traffic:
    requests: int = 600  # per full day
    error_share: float = 0.003  # requests answered 500 (Request failed)
    multiline_share: float = 0.5  # of those, failures whose exception text spans lines
    warning_share: float = 0.02  # requests answered 422 with a WARNING
    slow_factor: float = 1.0  # multiplies generation latency
    new_error: bool = False  # a signature the previous days never had
    key_leak: bool = False  # an API key written into a log line
    scanner: bool = False  # a client probing paths, over the rate, failing auth
    telemetry: float = 1.0  # share of chromadb telemetry ERROR lines written (noise)
    llm_status: int = 200  # every LLM call answers this (401: a revoked key)
    llm_overloaded: float = 0.003  # share of LLM calls answered 529 (then retried)
    restart: bool = False  # the service restarted two hours ago (CollectionQueryEvent)
    since: datetime | None = None  # this traffic from then on (wall clock), the usual before


def _access(
    ts: datetime, client: str, method: str, path: str, status: int, secs: float, tz=None
) -> str:
    offset = ts.replace(tzinfo=tz).strftime("%z") if tz else ts.astimezone().strftime("%z")
    when = f"{ts:%d}/{MONTHS[ts.month - 1]}/{ts:%Y:%H:%M:%S} {offset}"
    return (
        f'{client} - - [{when}] "{method} {path} HTTP/1.1" {status} {512 + status} "-" '
        f'"python-requests/2.31.0" {secs:.3f}'
    )


def _llm_call(rng: random.Random, t: Traffic, add, at: float) -> bool:
    """One LLM call as httpx and the SDK log it (529s retried twice); False if it failed."""
    if t.llm_status != 200:
        status, kind, message = LLM_FAILURES[t.llm_status]
        add(at, LLM.format(status=status))
        add(at + 0.002, LLM_ERROR.format(code=t.llm_status, kind=kind, message=message))
        return False
    for attempt in range(3):
        if rng.random() >= t.llm_overloaded:
            add(at + attempt * 0.4, LLM.format(status="200 OK"))
            return True
        add(at + attempt * 0.4, LLM.format(status="529 "))
        add(at + attempt * 0.4 + 0.001, RETRY.format(secs=rng.uniform(0.3, 0.9)))
    status, kind, message = LLM_FAILURES[529]
    add(at + 1.3, LLM_ERROR.format(code=529, kind=kind, message=message))
    return False


def _request(
    rng: random.Random, ts: datetime, t: Traffic, tz=None, kind: str = ""
) -> tuple[list, str]:
    """(timestamped app lines, access line) of one request (of `kind`, else a random one)."""
    kind = kind or rng.choices(["generate", "health", "validate", "stats"], weights=[5, 3, 2, 1])[0]
    app: list[tuple[datetime, str]] = []

    def add(dt: float, text: str) -> None:
        app.append((ts + timedelta(seconds=dt), text))

    client = rng.choice(CLIENTS)
    if kind in ("health", "stats"):
        path = f"/{kind}"
        secs = rng.uniform(0.005, 0.03)
        add(0, f"src.api.main - INFO - Request: GET {path}")
        if kind == "health" and rng.random() < t.telemetry:  # a client per component check
            for n, event in enumerate(["ClientStartEvent", "ClientCreateCollectionEvent"] * 2):
                add(0.001 * (n + 1), TELEMETRY.format(event=event))
        add(secs, f"src.api.main - INFO - Response: 200 - {secs:.3f}s")
        return app, _access(ts, client, "GET", path, 200, secs + rng.uniform(0, 0.01), tz)
    path = f"/api/v1/templates/{kind}"
    add(0, f"src.api.main - INFO - Request: POST {path}")
    request = rng.choice(REQUESTS)
    if kind == "generate":
        secs = max(0.8, rng.lognormvariate(0.9, 0.2)) * t.slow_factor
        add(0.01, f"src.agents.request_analyzer - INFO - 사용자 요청 분석 시작: {request}")
        _llm_call(rng, t, add, secs * 0.15)
        for part in (0.25, 0.3):
            add(secs * part, EMBEDDINGS.format(status="200 OK"))
        add(secs * 0.32, "src.database.vector_store - INFO - 정책 문서 검색: k=5, 결과 5건")
        for n, text in enumerate(WORKFLOW):  # the agents' own progress lines
            add(secs * (0.33 + 0.017 * n), text.format(request=request, n=rng.randint(1, 9)))
        _llm_call(rng, t, add, secs * 0.4)
        add(secs * 0.5, "src.agents.template_generator - INFO - 템플릿 생성 완료 (변수 3개)")
        _llm_call(rng, t, add, secs * 0.7)
        add(
            secs * 0.9,
            f"src.agents.compliance_checker - INFO - 컴플라이언스 점수: {rng.randint(80, 98)}.0",
        )
        if secs > 5:
            add(
                secs,
                f"src.utils.performance_monitor - WARNING - Slow operation: "
                f"template_generation took {secs:.1f}s",
            )
    else:
        secs = rng.uniform(0.05, 0.4)
        add(0.01, "src.agents.compliance_checker - INFO - 템플릿 검증 요청")
        _llm_call(rng, t, add, secs * 0.5)
    wait = rng.uniform(0, 0.05)
    if rng.random() < t.error_share:
        if rng.random() < t.multiline_share:
            add(secs, "src.api.main - ERROR - " + MULTILINE_FAILURE.format(secs=secs))
            return app, _access(ts, client, "POST", path, 500, secs + wait, tz)
        add(
            secs,
            "src.api.routes.templates - ERROR - Template generation failed: Anthropic API "
            f"error: Overloaded (request_id req_{rng.getrandbits(48):012x})",
        )
        add(secs + 0.001, f"src.api.main - ERROR - Request failed: Internal error - {secs:.3f}s")
        return app, _access(ts, client, "POST", path, 500, secs + wait, tz)
    if rng.random() < t.warning_share:
        add(
            0.005,
            "src.api.main - WARNING - HTTP Exception: 422 - user_request must be 10-1000 "
            f"characters (got {rng.randint(1, 9)})",
        )
        add(0.006, "src.api.main - INFO - Response: 422 - 0.006s")
        return app, _access(ts, client, "POST", path, 422, 0.006 + wait, tz)
    add(secs, f"src.api.main - INFO - Response: 200 - {secs:.3f}s")
    return app, _access(ts, client, "POST", path, 200, secs + wait, tz)


def _extras(
    rng: random.Random, start: datetime, end: datetime, t: Traffic, at: datetime, tz=None
) -> tuple[list, list]:
    """The one-off events of a fault, at `at` (two hours ago) if this day holds it."""
    app: list[tuple[datetime, str]] = []
    access: list[tuple[datetime, str]] = []
    if not start <= at < end:
        return app, access
    if t.new_error:
        for n in range(5):
            app.append(
                (
                    at + timedelta(seconds=n),
                    "src.database.vector_store - ERROR - Collection "
                    f"'langchain' dimension mismatch: expected 1536, got {768 + n}",
                )
            )
    if t.key_leak:
        app.append((at, f"src.utils.llm_client - DEBUG - client init with api_key={LEAKED_KEY}"))
    if t.restart:  # a new process's first query: chromadb's telemetry fails once more
        for n, event in enumerate(["ClientStartEvent", "CollectionQueryEvent"]):
            app.append((at + timedelta(seconds=n), TELEMETRY.format(event=event)))
    if t.scanner:
        probes = [("/.env", 200), ("/.git/config", 200), ("/wp-admin/", 404), ("/phpmyadmin/", 404)]
        probes += [("/api/v1/templates/generate", 401)] * 30 + [("/health", 200)] * 220
        minute = at.replace(second=0, microsecond=0)  # all 254 lines within one minute
        for n, (path, status) in enumerate(probes):
            ts = minute + timedelta(seconds=n * 0.1)
            access.append(
                (
                    ts,
                    _access(
                        ts, SCANNER, "GET" if status != 401 else "POST", path, status, 0.002, tz
                    ),
                )
            )
    return app, access


def _at(t: Traffic, ts: datetime) -> Traffic:
    """The traffic of a request at `ts`: `t`, or the usual one before `t.since`."""
    if t.since is None or ts >= t.since:
        return t
    return Traffic(requests=t.requests)


def day_logs(
    day: datetime, end: datetime, t: Traffic, rng: random.Random, event_at: datetime, tz=None
) -> tuple[list, list]:
    """App and access log lines from 00:00 of `day` up to `end`, in time order (wall-clock
    times of zone `tz`, None: this machine's)."""
    start = day.replace(hour=0, minute=0, second=0, microsecond=0)
    span = min((end - start).total_seconds(), 86400.0)
    app: list[tuple[datetime, str]] = []
    access: list[tuple[datetime, str]] = []
    for _ in range(t.requests):
        offset = rng.choices(range(24), weights=HOURLY)[0] * 3600 + rng.uniform(0, 3600)
        if offset >= span:
            continue
        ts = start + timedelta(seconds=offset)
        lines, line = _request(rng, ts, _at(t, ts), tz)
        app += lines
        access.append((ts, line))
    for hour, multiline in ((3, 1.0), (4, 0.0)):  # each kind of failure, every day
        ts = start + timedelta(hours=hour)
        if (ts - start).total_seconds() < span and t.error_share:
            failing = replace(_at(t, ts), error_share=1.0, multiline_share=multiline)
            lines, line = _request(rng, ts, failing, tz, kind="generate")
            app += lines
            access.append((ts, line))
    more_app, more_access = _extras(rng, start, start + timedelta(seconds=span), t, event_at, tz)
    app += more_app
    access += more_access
    app.sort(key=lambda e: e[0])
    access.sort(key=lambda e: e[0])
    app_lines = []
    for ts, text in app:
        if ts >= end:
            continue
        app_lines.append(f"{stamp(ts)} - {text}")
        if "Template generation failed" in text:  # the workflow logs its traceback
            app_lines += [
                "Traceback (most recent call last):",
                '  File "/app/src/workflow/langgraph_workflow.py", line 212, in run',
                "    result = self.graph.invoke(state)",
                "anthropic.InternalServerError: Error code: 529 - overloaded_error",
            ]
    return app_lines, [line for ts, line in access if ts < end]


def _write(path: Path, lines: list[str], mtime: float, compress: bool) -> None:
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape") if lines else b""
    if compress:
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(data)
    else:
        path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    path.chmod(0o644)


def write_logs(
    app_dir: Path,
    nginx_dir: Path,
    now: datetime,
    t: Traffic,
    rng: random.Random,
    days: int = 7,
    only_recent: bool = False,
    tz=None,
) -> None:
    """app.log and access.log for today so far, `.1` for yesterday, `.N.gz` before, as
    logrotate (daily, compress, delaycompress) leaves them. `now` is the wall clock of
    zone `tz` (None: this machine's), which the stamps are written in."""
    for n in range(days + 1):
        if only_recent and n > 1:
            break
        day = (now - timedelta(days=n)).replace(hour=0, minute=0, second=0, microsecond=0)
        end = now if n == 0 else day + timedelta(days=1)
        app, access = day_logs(day, end, t, rng, now - timedelta(hours=2), tz)
        if app and n == 3:
            app.insert(len(app) // 2, app[len(app) // 2] + " \udcff")  # one undecodable byte
        suffix = "" if n == 0 else ".1" if n == 1 else f".{n}.gz"
        mtime = end.replace(tzinfo=tz).timestamp() if tz else end.timestamp()
        _write(app_dir / f"app.log{suffix}", app, mtime, n >= 2)
        _write(nginx_dir / f"access.log{suffix}", access, mtime, n >= 2)
