"""A replica of the service's HTTP API (shared/SERVICE.md), with switchable faults.

Same paths, JSON shapes, status codes and `X-Process-Time` header as the real
FastAPI app; latency is realistic (generation 2-3 s, scaled by `latency_scale`).
Its settings live in `<sandbox>/run/sandbox.json` and are re-read when that file changes.
While serving it appends to `<sandbox>/app/logs/app.log` what the real service logs: the
request middleware's lines, and for a generation its agents' lines, one `httpx` line per
LLM and embeddings call with its status, SDK retries and the LLM client's ERROR lines
when the LLM fails (the `llm-*` faults), as shared/SERVICE.md shows.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from opscheck.sandbox.applog import ANTHROPIC, OPENAI_EMBEDDINGS, AppLog, Record, http_call
from opscheck.sandbox.wirefaults import WireFaults

DIR_ENV = "OPSCHECK_SANDBOX_DIR"
VERSION = "1.0.0"
READY_PATH = "/__sandbox__/ready"


class Settings:
    """The sandbox's faults and knobs, reloaded when run/sandbox.json changes."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / "run" / "sandbox.json"
        self._mtime = -1.0
        self.data: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return self.data
        if mtime != self._mtime:
            self._mtime = mtime
            self.data = json.loads(self.path.read_text())
        return self.data

    def has(self, fault: str) -> bool:
        return fault in self.get().get("faults", [])


ROOT = Path(os.environ.get(DIR_ENV, ".")).resolve()
SETTINGS = Settings(ROOT)
LOG = AppLog(ROOT / "app" / "logs" / "app.log")
# a fixed-delay timing run measures the load generator: the replica does nothing else
LOG.enabled = lambda: not float(SETTINGS.get().get("fixed_delay_ms", 0))
MAIN = "src.api.main"
_counter = itertools.count()
_stats = {"total_requests": 0, "successful_generations": 0, "scores": [], "times": [], "types": {}}
app = FastAPI(
    title="카카오 알림톡 템플릿 자동 생성 AI 서비스 (opscheck sandbox replica)", version=VERSION
)


def _scale() -> float:
    return float(SETTINGS.get().get("latency_scale", 1.0))


def _error_envelope(code: str, message: str, status: int = 500) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": {"code": code, "message": message, "details": {}}},
        status_code=status,
    )


class FaultsAndTiming:
    """Plain ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware, which would cap
    the replica near 200 requests a second): faults first, then `X-Process-Time`."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] == READY_PATH:
            await self.inner(scope, receive, send)  # the readiness probe is never faulted
            return
        start = time.perf_counter()
        LOG.write((MAIN, "INFO", f"Request: {scope['method']} {scope['path']}"))

        async def logged(message) -> None:
            if message["type"] == "http.response.start":  # logged before it is sent, as
                took = time.perf_counter() - start  # the service's middleware does
                LOG.write((MAIN, "INFO", f"Response: {message['status']} - {took:.3f}s"))
            await send(message)

        try:
            await self._serve(scope, receive, logged, start)
        except Exception as exc:
            LOG.write(
                (MAIN, "ERROR", f"Request failed: {exc} - {time.perf_counter() - start:.3f}s")
            )
            raise

    async def _serve(self, scope, receive, send, start: float) -> None:
        s = SETTINGS.get()
        faults = s.get("faults", [])
        _stats["total_requests"] += 1
        if "slow" in faults:
            await asyncio.sleep(float(s.get("slow_s", 12)))
        fixed_s = float(s.get("fixed_delay_ms", 0)) / 1000.0

        async def timed(message) -> None:
            if message["type"] == "http.response.start":
                if fixed_s > 0:  # every answer starts exactly this long after its request
                    await asyncio.sleep(max(0.0, start + fixed_s - time.perf_counter()))
                took = f"{time.perf_counter() - start:.4f}".encode()
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-process-time", took)],
                }
            await send(message)

        api = scope["path"].startswith("/api/v1/templates/") and scope["method"] == "POST"
        share = float(s.get("error_share", 0.05))
        if api and "errors" in faults and share > 0:
            n = next(_counter)  # deterministic: exactly `share` of API calls fail, evenly
            if int((n + 1) * share) > int(n * share):
                message = "템플릿 생성 중 오류가 발생했습니다"
                detail = {"code": "INTERNAL_ERROR", "message": message, "details": {}}
                LOG.write((MAIN, "WARNING", f"HTTP Exception: 500 - {detail}"))
                response = _error_envelope("INTERNAL_ERROR", message)
                await response(scope, receive, timed)
                return
        await self.inner(scope, receive, timed)


app.add_middleware(FaultsAndTiming)
# outermost: a wire fault answers before the app (and its log) sees the request
app.add_middleware(WireFaults, faults=lambda: SETTINGS.get().get("faults", []), exempt=READY_PATH)


@app.get(READY_PATH, include_in_schema=False)
async def ready() -> dict[str, bool]:
    return {"ready": True}


@app.get("/")
async def root() -> dict[str, Any]:
    return {
        "service": "카카오 알림톡 템플릿 자동 생성 AI 서비스",
        "version": VERSION,
        "status": "running",
        "docs": "/docs",
        "endpoints": {
            "generate": "/api/v1/templates/generate",
            "validate": "/api/v1/templates/validate",
            "health": "/health",
        },
    }


def _vector_database_state() -> str:
    """As the real service: a broken chroma.sqlite3 puts vector_database in error."""
    if SETTINGS.has("degraded"):
        return "error: Could not connect to tenant default_tenant. Are you sure it exists?"
    db = ROOT / "app" / "chroma_db" / "chroma.sqlite3"
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            con.execute("SELECT count(*) FROM collections").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"error: {exc}"
    return "healthy"


_startup_state = {"value": ""}


@app.on_event("startup")
async def _read_store_once() -> None:
    _startup_state["value"] = _vector_database_state()


async def _vector_state() -> str:
    """Checked on every call, as the real service does; only a fixed-delay timing run
    answers from the startup check, so /health takes exactly the fixed delay."""
    if float(SETTINGS.get().get("fixed_delay_ms", 0)) > 0 and _startup_state["value"]:
        return _startup_state["value"]
    return await asyncio.to_thread(_vector_database_state)


@app.get("/health")
async def health() -> Any:
    if SETTINGS.has("health-500"):
        return _error_envelope("HEALTH_CHECK_FAILED", "Health check failed: workflow init error")
    components = {
        "llm_client": "healthy",
        "vector_database": await _vector_state(),
        "workflow": "healthy",
    }
    await asyncio.sleep(random.uniform(0.004, 0.02) * _scale())
    status = "healthy" if all(v == "healthy" for v in components.values()) else "degraded"
    return {
        "status": status,
        "timestamp": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "version": VERSION,
        "components": components,
    }


@app.get("/stats")
async def stats() -> dict[str, Any]:
    scores, times = _stats["scores"], _stats["times"]
    types = sorted(_stats["types"].items(), key=lambda kv: -kv[1])
    return {
        "total_requests": _stats["total_requests"],
        "successful_generations": _stats["successful_generations"],
        "average_compliance_score": round(sum(scores) / len(scores), 1) if scores else 0.0,
        "average_processing_time": round(sum(times) / len(times), 3) if times else 0.0,
        "most_common_business_types": [t for t, _ in types[:3]],
    }


BusinessType = Literal["교육", "의료", "음식점", "쇼핑몰", "서비스업", "금융", "기타"]
ServiceType = Literal["신청", "예약", "주문", "배송", "안내", "확인", "피드백"]


class GenerateRequest(BaseModel):
    user_request: str = Field(min_length=10, max_length=1000)
    business_type: BusinessType | None = None
    service_type: ServiceType | None = None
    target_audience: str | None = None
    tone: Literal["정중한", "친근한", "공식적인"] | None = None
    required_variables: list[str] | None = None
    additional_requirements: str | None = None


class ValidateRequest(BaseModel):
    template_text: str = Field(min_length=1)
    variables: list[str] | None = None
    business_type: BusinessType | None = None
    button_text: str | None = None


VAR = re.compile(r"#\{([^{}]*)\}")


def score_template(text: str, variables: list[str], button: str | None) -> dict[str, Any]:
    """The service's rule part of compliance scoring, on AlimTalk's published rules."""
    violations, warnings = [], []
    found = VAR.findall(text)
    if len(text) > 1000:
        violations.append(f"본문 길이 {len(text)}자: 1,000자 초과")
    if len(set(found)) > 40:
        violations.append(f"변수 {len(set(found))}개: 40개 초과")
    if any(not v.strip() for v in found) or "#{" in VAR.sub("", text):
        violations.append("잘못된 변수 형식")
    if VAR.sub("", text).strip() == "":
        violations.append("본문이 변수로만 구성됨")
    if button and "#{" in button:
        violations.append("버튼명에 변수 사용")
    missing = [v for v in variables if v not in found]
    if missing:
        warnings.append(f"선언된 변수가 본문에 없음: {', '.join(missing)}")
    basic = max(0, 100 - 30 * len(violations))
    usage = max(0, 100 - 10 * len(missing))
    score = round(0.4 * basic + 0.2 * 100 + 0.2 * usage + 0.2 * 90, 1)
    return {
        "compliance": {
            "is_compliant": not violations and score >= 80,
            "score": score,
            "violations": violations,
            "warnings": warnings,
            "recommendations": ["정보성 메시지임을 명확히 표시하세요"] if warnings else [],
            "approval_probability": "high" if score >= 90 else "medium" if score >= 80 else "low",
            "required_changes": violations,
        },
        "detailed_scores": {
            "basic_rules": basic,
            "blacklist_check": 100,
            "variable_usage": usage,
            "llm_analysis": 90,
        },
    }


# Variables the request analyzer adds on keywords of the request (always 수신자명 first).
VARIABLE_KEYWORDS = {
    "날짜": ("일정", "날짜", "시간", "예약"),
    "금액": ("금액", "가격", "비용", "요금"),
    "상품명": ("상품", "제품", "서비스명"),
    "주소": ("주소", "위치", "장소"),
    "연락처": ("전화", "연락처", "번호"),
    "코드": ("코드", "번호", "인증"),
}
SERVICE_KEYWORDS = {
    "신청": ("신청", "등록", "가입", "접수"),
    "예약": ("예약", "예정", "일정"),
    "주문": ("주문", "구매", "결제"),
    "배송": ("배송", "발송", "택배", "출고"),
    "안내": ("안내", "공지", "알림", "정보"),
    "확인": ("확인", "승인", "완료"),
    "피드백": ("후기", "평가", "리뷰", "만족도"),
}
NOTICES = {
    "신청": "※ 이 메시지는 서비스를 신청하신 분들께 발송되는 정보성 안내입니다.",
    "예약": "※ 이 메시지는 예약을 하신 분들께 발송되는 정보성 안내입니다.",
    "주문": "※ 이 메시지는 주문을 하신 분들께 발송되는 정보성 안내입니다.",
}
POLICY_SOURCES = [
    "operations.md",
    "audit.md",
    "content-guide.md",
    "publictemplate.md",
    "infotalk.md",
    "white-list.md",
]
WORKFLOW = "src.workflow.langgraph_workflow"
LLM_CLIENT = "src.utils.llm_client"
ANALYZER = "src.agents.request_analyzer"
GENERATOR = "src.agents.template_generator"
CHECKER = "src.agents.compliance_checker"
VECTOR_STORE = "src.database.vector_store"
NOT_JSON = "Expecting value: line 1 column 1 (char 0)"  # the LLM client's "" parsed as JSON


@dataclass(frozen=True)
class LlmFailure:
    """How the LLM API fails under a fault: status, Anthropic error type, SDK retries."""

    status: int
    kind: str
    message: str
    retries: int

    def text(self) -> str:
        error = {"type": "error", "error": {"type": self.kind, "message": self.message}}
        return f"Error code: {self.status} - {error}"


LLM_FAULTS = {
    "llm-down": LlmFailure(500, "api_error", "Internal server error", 2),
    "llm-401": LlmFailure(401, "authentication_error", "invalid x-api-key", 0),
    "llm-overloaded": LlmFailure(529, "overloaded_error", "Overloaded", 2),
}
EMBEDDINGS_401 = (
    "Error code: 401 - {'error': {'message': 'Incorrect API key provided.', "
    "'type': 'invalid_request_error', 'param': None, 'code': 'invalid_api_key'}}"
)


def analyzer_variables(user_request: str) -> list[str]:
    """The variables the real request analyzer picks from the request's text."""
    found = [v for v, words in VARIABLE_KEYWORDS.items() if any(w in user_request for w in words)]
    return ["수신자명", *found]


def analyzer_service_type(user_request: str) -> str:
    for service, words in SERVICE_KEYWORDS.items():
        if any(w in user_request for w in words):
            return service
    return "안내"


def _llm_failure() -> LlmFailure | None:
    faults = SETTINGS.get().get("faults", [])
    return next((LLM_FAULTS[f] for f in LLM_FAULTS if f in faults), None)


async def _llm_call(seconds: float) -> tuple[bool, list[Record]]:
    """One LLM call; (answered, the records of its end for the caller to write with its
    own). A failure ends after the SDK's retries (written as they happen) with the LLM
    client's ERROR record, as the service logs it."""
    failure = _llm_failure()
    if failure is None:
        await asyncio.sleep(seconds)
        return True, [http_call(ANTHROPIC, 200)]
    for attempt in range(failure.retries):
        await asyncio.sleep(0.05 * _scale())
        delay = random.uniform(0.375, 0.5) * 2**attempt
        retry = f"Retrying request to /v1/messages in {delay:.6f} seconds"
        LOG.write(http_call(ANTHROPIC, failure.status), ("anthropic._base_client", "INFO", retry))
        await asyncio.sleep(delay * 0.5 * _scale())
    await asyncio.sleep(0.05 * _scale())
    return False, [
        http_call(ANTHROPIC, failure.status),
        (LLM_CLIENT, "ERROR", f"Error generating response: {failure.text()}"),
    ]


async def _policy_search(seconds: float, query: str) -> tuple[list[str], list[Record]]:
    """Two embeddings calls for the policy retrieval; (sources found, [] when the calls
    failed; the records of its end)."""
    failing = SETTINGS.has("embeddings-401")
    pending: list[Record] = []
    for _ in range(2):
        await asyncio.sleep(seconds / 2)
        LOG.write(*pending)
        if failing:
            error = f"Error searching policies: {EMBEDDINGS_401}"
            pending = [http_call(OPENAI_EMBEDDINGS, 401), (VECTOR_STORE, "ERROR", error)]
        else:
            pending = [http_call(OPENAI_EMBEDDINGS, 200)]
    chunks = 0 if failing else 5
    pending += [
        ("src.agents.policy_rag", "INFO", f"Found {chunks} relevant policy chunks"),
        (WORKFLOW, "INFO", f"Retrieved {chunks} policy chunks"),
    ]
    return ([] if failing else list(POLICY_SOURCES)), pending


def _fallback(req: GenerateRequest, start: float) -> dict[str, Any]:
    """The real service's answer when its LLM is down (SERVICE.md): 200, success, a
    compliant-looking score; the LLM client's canned text with no variable, the
    compliance step's own failure as a violation."""
    notice = NOTICES.get(
        analyzer_service_type(req.user_request), "※ 이 메시지는 서비스 이용 관련 정보성 안내입니다."
    )
    return {
        "success": True,
        "template": {
            "text": f"안녕하세요 템플릿 생성에 실패했습니다.\n\n{notice}",
            "variables": [],
            "button_suggestion": "",
            "metadata": {
                "business_type": req.business_type or "기타",
                "service_type": analyzer_service_type(req.user_request),
                "generation_method": "ai_generated",
            },
        },
        "compliance": {
            "is_compliant": True,
            "score": 85.5,
            "violations": ["정보성 메시지 표시가 없습니다", "컴플라이언스 검사 실패"],
            "warnings": [],
            "recommendations": ["수동 검토 필요"],
            "approval_probability": "보통",
            "required_changes": [],
        },
        "analysis": {
            "business_type": "기타",
            "service_type": "공지/안내",
            "message_purpose": "일반 안내",
            "target_audience": "고객",
            "required_variables": analyzer_variables(req.user_request),
        },
        "workflow_info": {
            "iterations": 1,
            "errors": [],
            "policy_sources": list(POLICY_SOURCES),
            "processing_time_seconds": round(time.perf_counter() - start, 2),
        },
    }


def _template_text(variables: list[str], service_type: str) -> str:
    """A template as the LLM writes it: the analyzer's variables, the info notice."""
    lines = [f"안녕하세요 #{{{variables[0]}}}님,", "요청하신 내용이 정상적으로 처리되었습니다.", ""]
    lines += [f"▶ {v}: #{{{v}}}" for v in variables[1:]]
    lines += ["문의 사항은 고객센터로 연락 주시기 바랍니다.", ""]
    lines.append(NOTICES.get(service_type, "※ 이 메시지는 서비스 이용 관련 정보성 안내입니다."))
    return "\n".join(lines)


async def _workflow(req: GenerateRequest) -> tuple[bool, list[str], list[Record]]:
    """The three LLM steps and the retrieval, logged as the service does, in few appends;
    (template made, policy sources, the records of its end)."""
    total = random.uniform(2.0, 3.0) * _scale()
    asked = req.user_request[:100]
    LOG.write(
        ("src.api.routes.templates", "INFO", f"Template generation request: {asked}..."),
        (WORKFLOW, "INFO", f"Starting workflow for request: {asked}..."),
        (WORKFLOW, "INFO", "Analyzing user request..."),
        (ANALYZER, "INFO", f"Analyzing user request: {asked}..."),
    )
    analysed, end = await _llm_call(0.3 * total)
    LOG.write(
        *end,
        (LLM_CLIENT, "INFO", f"Request analysis completed in {0.3 * total:.2f}s (optimized)")
        if analysed
        else (LLM_CLIENT, "ERROR", f"Error parsing request analysis: {NOT_JSON}"),
        (ANALYZER, "INFO", "Request analysis completed successfully"),
        (WORKFLOW, "INFO", f"Request analysis completed: {req.business_type or '기타'}"),
        (WORKFLOW, "INFO", "Retrieving relevant policies..."),
        ("src.agents.policy_rag", "INFO", f"Searching for policies related to: {asked}..."),
    )
    sources, end = await _policy_search(0.1 * total, req.user_request)
    LOG.write(
        *end,
        (WORKFLOW, "INFO", "Generating template..."),
        (GENERATOR, "INFO", "Generating template based on analysis and policies"),
    )
    made, end = await _llm_call(0.4 * total)
    LOG.write(
        *end,
        (LLM_CLIENT, "INFO", f"Template generation completed in {0.4 * total:.2f}s (optimized)")
        if made
        else (LLM_CLIENT, "ERROR", f"Error generating template: {NOT_JSON}"),
        (GENERATOR, "INFO", "Template generation completed successfully"),
        (WORKFLOW, "INFO", "Template generation completed"),
        (WORKFLOW, "INFO", "Checking compliance..."),
        (CHECKER, "INFO", "Starting compliance check for template"),
    )
    checked, end = await _llm_call(0.2 * total)
    end.append(
        (LLM_CLIENT, "INFO", f"Compliance check completed in {0.2 * total:.2f}s (optimized)")
        if checked
        else (LLM_CLIENT, "ERROR", f"Error checking compliance: {NOT_JSON}")
    )
    return made, sources, end


@app.post("/api/v1/templates/generate")
async def generate(req: GenerateRequest) -> Any:
    """As the real route: only `user_request` reaches the workflow and the analyzer picks
    the variables; `required_variables` is ignored, the other fields fill metadata."""
    start = time.perf_counter()
    made, sources, end = await _workflow(req)
    if not made or SETTINGS.has("silent-fallback"):
        LOG.write(*end)
        body = _fallback(req, start)
        _stats["successful_generations"] += 1
        _stats["scores"].append(body["compliance"]["score"])
        return body
    variables = analyzer_variables(req.user_request)
    service_type = analyzer_service_type(req.user_request)
    text = _template_text(variables, service_type)
    button = "자세히 보기"
    scored = score_template(text, variables, button)
    score = scored["compliance"]["score"]
    LOG.write(*end, (CHECKER, "INFO", f"Compliance check completed. Score: {score}"))
    elapsed = time.perf_counter() - start
    _stats["successful_generations"] += 1
    _stats["scores"].append(scored["compliance"]["score"])
    _stats["times"].append(elapsed)
    bt = req.business_type or "기타"
    _stats["types"][bt] = _stats["types"].get(bt, 0) + 1
    return {
        "success": True,
        "template": {
            "text": text,
            "variables": variables,
            "button_suggestion": button,
            "metadata": {
                "business_type": bt,
                "service_type": req.service_type or service_type,
                "tone": req.tone or "정중한",
                "generation_method": "ai_generated",
                "generation_timestamp": datetime.now().isoformat(),
            },
        },
        "compliance": scored["compliance"],
        "analysis": {
            "business_type": bt,
            "service_type": service_type,
            "message_purpose": req.user_request[:60],
            "required_variables": variables,
        },
        "workflow_info": {
            "iterations": 1,
            "errors": [],
            "policy_sources": sources,
            "processing_time_seconds": round(elapsed, 2),
        },
    }


@app.post("/api/v1/templates/validate")
async def validate(req: ValidateRequest) -> Any:
    LOG.write(
        (
            "src.api.routes.templates",
            "INFO",
            f"Template validation request: {req.template_text[:50]}...",
        ),
        ("src.agents.compliance_checker", "INFO", "Starting compliance check for template"),
    )
    checked, end = await _llm_call(random.uniform(0.1, 0.4) * _scale())
    if not checked:
        end.append((LLM_CLIENT, "ERROR", f"Error checking compliance: {NOT_JSON}"))
    LOG.write(*end)
    scored = score_template(req.template_text, req.variables or [], req.button_text)
    c = scored["compliance"]
    report = f"컴플라이언스 점수 {c['score']}점, 위반 {len(c['violations'])}건"
    return {
        "success": True,
        "compliance": c,
        "detailed_scores": scored["detailed_scores"],
        "compliance_report": report,
    }


@app.get("/api/v1/templates/examples")
async def examples() -> dict[str, Any]:
    return {
        "success": True,
        "examples": [
            {"business_type": "음식점", "user_request": "피자 주문 완료 안내"},
            {"business_type": "교육", "user_request": "온라인 강의 수강 신청 완료"},
        ],
    }


@app.get("/api/v1/templates/categories")
async def categories() -> dict[str, Any]:
    return {
        "success": True,
        "business_types": list(BusinessType.__args__),
        "service_types": list(ServiceType.__args__),
    }
