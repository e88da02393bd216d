"""A replica of the service's HTTP API (shared/SERVICE.md), with switchable faults.

Same paths, JSON shapes, status codes and `X-Process-Time` header as the real
FastAPI app; latency is realistic (generation 2-3 s, scaled by `latency_scale`).
Its settings live in `<sandbox>/run/sandbox.json` and are re-read when that file changes.
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
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

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
        s = SETTINGS.get()
        faults = s.get("faults", [])
        _stats["total_requests"] += 1
        if "slow" in faults:
            await asyncio.sleep(float(s.get("slow_s", 12)))
        if float(s.get("fixed_delay_ms", 0)) > 0:  # every answer takes exactly this long
            await asyncio.sleep(float(s["fixed_delay_ms"]) / 1000.0)

        async def timed(message) -> None:
            if message["type"] == "http.response.start":
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
                response = _error_envelope("INTERNAL_ERROR", "템플릿 생성 중 오류가 발생했습니다")
                await response(scope, receive, timed)
                return
        await self.inner(scope, receive, timed)


app.add_middleware(FaultsAndTiming)


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


def _fallback(req: GenerateRequest, start: float) -> dict[str, Any]:
    """What the real service answers when its LLM or embeddings are down: 200, success,
    a compliant-looking canned template; only the workflow's report tells."""
    text = (
        "안녕하세요 #{고객명}님,\n요청하신 내용에 대한 안내 말씀 드립니다.\n"
        "문의 사항은 고객센터로 연락 주시기 바랍니다."
    )
    scored = score_template(text, ["고객명"], "자세히 보기")
    return {
        "success": True,
        "template": {
            "text": text,
            "variables": ["고객명"],
            "button_suggestion": "자세히 보기",
            "metadata": {"business_type": req.business_type or "기타"},
        },
        "compliance": scored["compliance"],
        "analysis": {},
        "workflow_info": {
            "iterations": 0,
            "errors": [
                "LLM 호출 실패: Connection error.",
                "정책 검색 실패: Error code: 401 - invalid_api_key (embeddings)",
            ],
            "policy_sources": [],
            "processing_time_seconds": round(time.perf_counter() - start, 3),
        },
    }


@app.post("/api/v1/templates/generate")
async def generate(req: GenerateRequest) -> Any:
    start = time.perf_counter()
    if SETTINGS.has("silent-fallback"):
        return _fallback(req, start)
    await asyncio.sleep(random.uniform(2.0, 3.0) * _scale())
    variables = list(dict.fromkeys([*(req.required_variables or []), "고객명", "안내일시"]))[:10]
    lines = [
        f"안녕하세요 #{{{variables[0]}}}님,",
        f"요청하신 '{req.user_request[:60]}' 관련 안내입니다.",
    ]
    lines += [f"- {v}: #{{{v}}}" for v in variables[1:]]
    lines.append("문의 사항은 고객센터로 연락 주시기 바랍니다.")
    text = "\n".join(lines)
    button = "자세히 보기"
    scored = score_template(text, variables, button)
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
                "service_type": req.service_type or "안내",
                "tone": req.tone or "정중한",
                "generated_at": datetime.now().isoformat(),
            },
        },
        "compliance": scored["compliance"],
        "analysis": {
            "business_type": bt,
            "intent": req.user_request[:60],
            "detected_variables": variables,
            "confidence": 0.9,
        },
        "workflow_info": {
            "iterations": 1,
            "errors": [],
            "policy_sources": [
                "data/cleaned_policies/alimtalk_content_guide.md",
                "data/cleaned_policies/audit_guide.md",
            ],
            "processing_time_seconds": round(elapsed, 3),
        },
    }


@app.post("/api/v1/templates/validate")
async def validate(req: ValidateRequest) -> Any:
    await asyncio.sleep(random.uniform(0.1, 0.4) * _scale())
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
