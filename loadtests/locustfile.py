"""The service's traffic for Locust: generate 3 : health 1 : validate 1.

Korean requests as in the guide's testing chapter; a response counts as failed when it
is not 200 or its `success` (health: `status`) is not what the service promises.
Requests are named by endpoint so Locust's statistics group cleanly. The request text
gets a counter so the service's per-request cache does not answer for it.
"""

from __future__ import annotations

import itertools
import random

from locust import FastHttpUser, between, task

REQUESTS = [
    ("피자 주문 완료 안내", "음식점", "주문"),
    ("온라인 강의 수강 신청 완료", "교육", "신청"),
    ("치과 진료 예약 확정", "의료", "예약"),
    ("쇼핑몰 상품 배송 시작", "쇼핑몰", "배송"),
    ("헬스장 회원권 등록 완료", "서비스업", "확인"),
]
TEMPLATE = "안녕하세요 #{고객명}님, 주문하신 #{상품명}이 #{배송일}에 출발합니다."
_serial = itertools.count()


class ServiceUser(FastHttpUser):
    wait_time = between(0.5, 1.5)

    @task(3)
    def generate(self) -> None:
        text, business, service = random.choice(REQUESTS)
        body = {
            "user_request": f"{text} 메시지를 만들어 주세요 (부하 {next(_serial)})",
            "business_type": business,
            "service_type": service,
        }
        with self.client.post(
            "/api/v1/templates/generate",
            json=body,
            catch_response=True,
            name="POST /api/v1/templates/generate",
        ) as resp:
            _expect(resp, lambda doc: doc.get("success") is True)

    @task(1)
    def health(self) -> None:
        with self.client.get("/health", catch_response=True, name="GET /health") as resp:
            _expect(resp, lambda doc: doc.get("status") == "healthy")

    @task(1)
    def validate(self) -> None:
        body = {"template_text": TEMPLATE, "variables": ["고객명", "상품명", "배송일"]}
        with self.client.post(
            "/api/v1/templates/validate",
            json=body,
            catch_response=True,
            name="POST /api/v1/templates/validate",
        ) as resp:
            _expect(resp, lambda doc: doc.get("success") is True)


def _expect(resp, ok) -> None:
    if resp.status_code != 200:
        resp.failure(f"HTTP {resp.status_code}")
        return
    try:
        doc = resp.json()
    except ValueError:
        resp.failure("not JSON")
        return
    if not isinstance(doc, dict) or not ok(doc):
        resp.failure("answer says it failed")
    else:
        resp.success()
