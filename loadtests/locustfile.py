"""The service's traffic for Locust: generate 3 : health 1 : validate 1, in turn.

Each user takes the endpoints in the fixed order of `MIX`, starting at its own place in
it (the n-th user of a process at place n), not drawn at random by weight: a short run
then holds every endpoint in its share, never one starved by chance below the
`[load] min_requests` a verdict needs (10 users of 3 requests each give 6 of each of
health and validate, every time).

Korean requests as in the guide's testing chapter; a response counts as failed when it
is not 200 or its `success` (health: `status`) is not what the service promises.
Requests are named by endpoint so Locust's statistics group cleanly. The request text
gets a counter so the service's per-request cache does not answer for it.

Each Locust process keeps its own statistics of the requests its users completed (as
Locust records them), counts the requests they started, and those Locust killed while
they ran because they outlasted the run and its stop timeout: Locust's statistics do not
hold those at all. At quit it writes them (and, in the process that holds Locust's own
statistics, when they began) to `$OPSCHECK_LOCUST_COUNTS/counts-<pid>.json`, with how
late a 50 ms timer woke in that process while its users ran: the generator's own
scheduling delay, which every response time it records includes, and the service's own
time for each request (its `X-Process-Time` header), bucketed as Locust buckets its own.

The base URL's `user:password` comes in `$OPSCHECK_LOCUST_USERINFO`, not in `--host`
(a command line every user of the machine can read), and is sent as Locust sends a
URL's userinfo: HTTP Basic.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import gevent
from gevent import GreenletExit
from locust import FastHttpUser, between, events, task
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import RequestStats, bucket_response_time

COUNTS_ENV = "OPSCHECK_LOCUST_COUNTS"
AUTH_ENV = "OPSCHECK_LOCUST_USERINFO"  # the base URL's user:password (kept off the command line)
GENERATE = "POST /api/v1/templates/generate"
HEALTH = "GET /health"
VALIDATE = "POST /api/v1/templates/validate"
ENDPOINTS = (GENERATE, HEALTH, VALIDATE)
MIX = (GENERATE, HEALTH, GENERATE, VALIDATE, GENERATE)  # 3 : 1 : 1, taken in turn
REQUESTS = [
    ("피자 주문 완료 안내", "음식점", "주문"),
    ("온라인 강의 수강 신청 완료", "교육", "신청"),
    ("치과 진료 예약 확정", "의료", "예약"),
    ("쇼핑몰 상품 배송 시작", "쇼핑몰", "배송"),
    ("헬스장 회원권 등록 완료", "서비스업", "확인"),
]
TEMPLATE = "안녕하세요 #{고객명}님, 주문하신 #{상품명}이 #{배송일}에 출발합니다."
_serial = itertools.count()
_users = itertools.count()  # each user of this process starts at its own place in MIX
_started = dict.fromkeys(ENDPOINTS, 0)
_killed = dict.fromkeys(ENDPOINTS, 0)  # in flight when Locust killed its user
_stopping: list[bool] = []  # not empty once Locust began to stop its users
_stats = RequestStats()  # this process's own: a worker's last report to the master is lost
_environment: list = []  # the Environment, from the init event
TICK_S = 0.05  # the lag watcher's timer
_lag_ms: Counter[int] = Counter()  # how late (ms) each tick woke while the users ran
SERVER_TIME = "X-Process-Time"  # seconds, server side (SERVICE.md), on every response
_server_ms: dict[str, Counter[int]] = {name: Counter() for name in ENDPOINTS}


def _basic_auth(userinfo: str) -> str | None:
    """The Authorization header Locust builds from a URL's `user:password@` (percent-decoded)."""
    if not userinfo:
        return None
    user, _, password = userinfo.partition(":")
    raw = f"{unquote(user)}:{unquote(password)}"
    try:
        data = raw.encode("latin1")
    except UnicodeEncodeError:
        data = raw.encode("utf-8")
    return "Basic " + base64.b64encode(data).decode("ascii")


AUTHORIZATION = _basic_auth(os.environ.get(AUTH_ENV, ""))


class ServiceUser(FastHttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        if AUTHORIZATION:
            self.client.auth_header = AUTHORIZATION
        self._turn = itertools.count(next(_users))

    @task
    def next_request(self) -> None:
        """The endpoint whose turn it is in MIX."""
        name = MIX[next(self._turn) % len(MIX)]
        {GENERATE: self.generate, HEALTH: self.health, VALIDATE: self.validate}[name]()

    def generate(self) -> None:
        text, business, service = random.choice(REQUESTS)
        body = {
            "user_request": f"{text} 메시지를 만들어 주세요 (부하 {next(_serial)})",
            "business_type": business,
            "service_type": service,
        }
        self._call(GENERATE, body, lambda doc: doc.get("success") is True)

    def health(self) -> None:
        self._call(HEALTH, None, lambda doc: doc.get("status") == "healthy")

    def validate(self) -> None:
        body = {"template_text": TEMPLATE, "variables": ["고객명", "상품명", "배송일"]}
        self._call(VALIDATE, body, lambda doc: doc.get("success") is True)

    def _call(self, name: str, body: dict[str, Any] | None, ok) -> None:
        """One request named `name` ("METHOD /path"), counted as started before it is sent.
        One begun after Locust began to stop (a user it killed as it woke) is not counted
        as killed in flight: it did not outlast the run."""
        method, path = name.split(" ", 1)
        _started[name] += 1
        late = bool(_stopping)
        try:
            with self.client.request(
                method, path, json=body, catch_response=True, name=name
            ) as resp:
                _note_server_time(name, resp)
                _expect(resp, ok)
        except GreenletExit:
            if not late:
                _killed[name] += 1
            raise


def _note_server_time(name: str, resp) -> None:
    """The service's own time for this request, bucketed as Locust buckets its own."""
    try:
        seconds = float((resp.headers or {}).get(SERVER_TIME) or "")
    except (TypeError, ValueError):
        return
    _server_ms[name][bucket_response_time(seconds * 1000)] += 1


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


@events.init.add_listener
def _keep_environment(environment, **_kwargs) -> None:
    _environment.append(environment)


def _watch_lag() -> None:
    """How late a 50 ms timer wakes in this process: the delay every response waits for
    before Locust times it (a busy or starved generator), until Locust begins to stop."""
    while not _stopping:
        start = time.perf_counter()
        gevent.sleep(TICK_S)
        late = time.perf_counter() - start - TICK_S
        if not _stopping:
            _lag_ms[max(0, round(late * 1000))] += 1


@events.test_start.add_listener
def _start_lag_watch(environment, **_kwargs) -> None:
    if not isinstance(environment.runner, MasterRunner):  # the master runs no users
        gevent.spawn(_watch_lag)


@events.test_stopping.add_listener
def _note_stopping(**_kwargs) -> None:
    _stopping.append(True)


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, **_kwargs):
    """As Locust's own runner records a request, into this process's statistics."""
    _stats.log_request(request_type, name, response_time, response_length)
    if exception:
        _stats.log_error(request_type, name, exception)


@events.quit.add_listener
def _write_counts(**_kwargs) -> None:
    folder = os.environ.get(COUNTS_ENV)
    if not folder:
        return
    doc: dict[str, Any] = {
        "started": _started,
        "killed": _killed,
        "stats": _stats.serialize_stats(),
        "lag_ms": {str(ms): n for ms, n in _lag_ms.items()},
        "server_ms": {name: {str(k): n for k, n in c.items()} for name, c in _server_ms.items()},
    }
    env = _environment[0] if _environment else None
    if env is not None and not isinstance(env.runner, WorkerRunner):
        doc["stats_start"] = env.stats.total.start_time  # Locust's RPS counts from here
    Path(folder, f"counts-{os.getpid()}.json").write_text(json.dumps(doc))
