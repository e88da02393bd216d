"""The weekly cache checks against the sandbox's real redis-server, green and red."""

from __future__ import annotations

import hashlib
import re
import time
import tomllib

import pytest
import redis

from opscheck.probes.cache import connect, glob_regex, survey
from tests.test_fault_matrix import WEEKLY_BUT_LOAD

CACHE_IDS = {"cache_ttl_policy", "cache_hit_ratio", "cache_idle_keys", "redis_requires_auth"}
CHECKS = "checks/weekly/test_cache.py"


@pytest.fixture
def cache_sandbox(sandbox_factory):
    """`make(*faults)`: a sandbox with its Redis (the web replica is not needed here)."""

    def make(*faults: str):
        return sandbox_factory("down", *faults)

    return make


def redis_url(sb) -> str:
    return tomllib.loads(sb.config.read_text())["redis"]["url"]


def client(sb, db: int = 0) -> redis.Redis:
    return redis.Redis.from_url(redis_url(sb)[: -len("/0")] + f"/{db}", socket_timeout=5)


def digest(r: redis.Redis) -> tuple[int, str]:
    """Every key's serialized value and absolute expiry (EXPIRETIME), hashed in key order."""
    h = hashlib.sha256()
    keys = sorted(r.scan_iter(count=1000))
    for key in keys:
        h.update(key + b"\0" + (r.dump(key) or b"") + b"\0" + str(r.expiretime(key)).encode())
    return len(keys), h.hexdigest()


def outcomes(run) -> dict[str, str]:
    return {k: v for k, v in run.outcomes().items() if k in CACHE_IDS}


def outputs(run) -> list[str]:
    """Everything the run printed or wrote (reports, state)."""
    files = [p for p in run.reports_dir.rglob("*") if p.is_file()]
    return [run.stdout, run.stderr, *(p.read_text(errors="replace") for p in files)]


def no_secret(run, sb) -> None:
    pw = redis.connection.parse_url(redis_url(sb)).get("password")
    if pw:
        for text in outputs(run):
            assert pw not in text


def test_healthy_cache_passes_every_check(cache_sandbox, run_checks):
    sb = cache_sandbox()
    run = run_checks(sb.config, CHECKS)
    assert outcomes(run) == dict.fromkeys(CACHE_IDS, "passed"), run.stdout[-2000:]
    ev = {e["name"]: e for e in run.one("cache_ttl_policy")["evidence"]}
    assert ev["sampled"]["value"] == "all 348 keys"
    assert ev["template:* longest TTL"]["limit"] == 1800
    ratio = {e["name"]: e for e in run.one("cache_hit_ratio")["evidence"]}
    assert ratio["keyspace hits"]["value"] == 300  # the survey's own lookups taken out
    assert ratio["keyspace hit ratio"]["value"] == pytest.approx(0.9091)
    no_secret(run, sb)


def test_ttl_policy_red_on_keys_without_ttl(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-no-ttl")
    run = run_checks(sb.config, CHECKS)
    assert outcomes(run)["cache_ttl_policy"] == "failed"
    assert {i for i, o in outcomes(run).items() if o != "passed"} == {"cache_ttl_policy"}
    msg = run.one("cache_ttl_policy")["message"]
    first, second = msg.split("; ")
    assert re.fullmatch(
        r"5 template:\* keys have no TTL \(e\.g\. (template:[0-9a-f]{16}(, )?){5}\), policy 1800 s",
        first,
    )
    assert second == "1 (no pattern) keys have no TTL (e.g. session:7f3a), every key must expire"


def test_ttl_policy_zero_lets_a_pattern_live_without_ttl(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-no-ttl")
    policy = 'ttl_policy = {"template:*" = 1800, "session:*" = 0, "policy:*" = 3600}'
    cfg = sb.root / "policy.toml"  # (with_config writes no inline tables)
    cfg.write_text(sb.config.read_text().replace("[redis]\n", f"[redis]\n{policy}\n"))
    run = run_checks(cfg, CHECKS)
    msg = run.one("cache_ttl_policy")["message"]
    assert "5 template:* keys have no TTL" in msg and "session" not in msg


def test_ttl_policy_red_on_ttl_above_policy(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-ttl-over")
    run = run_checks(sb.config, CHECKS)
    assert {i for i, o in outcomes(run).items() if o != "passed"} == {"cache_ttl_policy"}
    msg = run.one("cache_ttl_policy")["message"]
    assert re.search(
        r"4 policy:\* keys have a TTL above the policy's 3600 s \(the longest 86\d{3} s", msg
    )
    assert msg.endswith("limit 3600 s")


def test_sample_limit_bounds_the_survey_and_says_so(cache_sandbox, run_checks):
    sb = cache_sandbox()
    run = run_checks(sb.with_config("[redis]\nsample_keys = 100"), CHECKS)
    ev = {e["name"]: e for e in run.one("cache_ttl_policy")["evidence"]}
    assert ev["keys inspected"]["value"] == 100 and ev["keys inspected"]["limit"] == 348
    assert ev["sampled"]["value"] == "100 of 348 keys (stopped by sample_keys = 100)"


def test_hit_ratio_red_when_low(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-low-hits")
    run = run_checks(sb.config, CHECKS)
    assert {i for i, o in outcomes(run).items() if o != "passed"} == {"cache_hit_ratio"}
    assert run.one("cache_hit_ratio")["message"] == "keyspace hit ratio is 0.0909, minimum 0.5"


def test_idle_keys_red_with_a_tiny_idle_limit(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-idle")
    run = run_checks(sb.config, CHECKS)
    assert {i for i, o in outcomes(run).items() if o != "passed"} == {"cache_idle_keys"}
    msg = run.one("cache_idle_keys")["message"]
    assert re.match(r"348 keys idle longer than 2\.31e-05 days \(2 s\) \(the longest ", msg)
    assert msg.endswith("limit 2.31e-05 days (2 s)")


def test_idle_keys_green_with_the_default_limit_after_the_same_wait(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-idle")
    run = run_checks(sb.with_config("[thresholds]\ncache_idle_days = 30"), CHECKS)
    assert outcomes(run)["cache_idle_keys"] == "passed"


def test_idle_keys_skipped_under_lfu(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-lfu")
    with client(sb) as r, pytest.raises(redis.ResponseError, match="LFU"):
        r.object("idletime", next(r.scan_iter()))  # what Redis says, for real
    run = run_checks(sb.config, CHECKS)
    assert outcomes(run) == {**dict.fromkeys(CACHE_IDS, "passed"), "cache_idle_keys": "skipped"}
    assert "maxmemory-policy is allkeys-lfu" in run.one("cache_idle_keys")["message"]


def test_requires_auth_red_without_password(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-no-auth")
    run = run_checks(sb.config, CHECKS)
    assert {i for i, o in outcomes(run).items() if o != "passed"} == {"redis_requires_auth"}
    msg = run.one("redis_requires_auth")["message"]
    assert re.match(
        r"Redis at redis://127\.0\.0\.1:\d+/0 answers PING without a password \(PONG\)", msg
    )


def test_every_cache_check_fails_fast_when_redis_is_down(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-down")
    start = time.monotonic()
    # the load test never asks Redis; with the web replica down it only waits out 60 s
    run = run_checks(sb.config, "-m", WEEKLY_BUT_LOAD)
    assert time.monotonic() - start < 120
    assert outcomes(run) == dict.fromkeys(CACHE_IDS, "failed")
    for check_id in CACHE_IDS:
        msg = run.one(check_id)["message"]
        assert re.fullmatch(
            r"cannot reach Redis at redis://127\.0\.0\.1:\d+/0: Error 111 .*refused\.", msg
        )
    assert "backup_every_day" in run.outcomes(), "the rest of the weekly run went on"
    no_secret(run, sb)


WRONG = "Wr0ngPassw0rd-5a7c"


def test_wrong_password_fails_without_printing_it(cache_sandbox, run_checks):
    sb = cache_sandbox()
    url = re.sub(r":[^:@/]+@", f":{WRONG}@", redis_url(sb))
    run = run_checks(sb.with_config(f'[redis]\nurl = "{url}"'), CHECKS)
    out = outcomes(run)
    assert out.pop("redis_requires_auth") == "passed"  # it never uses the password
    assert out == dict.fromkeys(CACHE_IDS - {"redis_requires_auth"}, "failed")
    msg = run.one("cache_ttl_policy")["message"]
    assert msg.startswith("Redis refused the credentials at redis://127.0.0.1:")
    assert msg.endswith(": invalid username-password pair or user is disabled.")
    for text in outputs(run):
        assert WRONG not in text


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis://:pw-9f2e@no-such-host.invalid:6379/0", "Name or service not known"),
        ("rediss://:pw-9f2e@127.0.0.1:{port}/0", "connecting"),
    ],
    ids=["unknown-host", "tls-to-a-plain-server"],
)
def test_unreachable_urls_fail_in_bounded_time(cache_sandbox, run_checks, url, reason):
    sb = cache_sandbox()
    port = redis.connection.parse_url(redis_url(sb))["port"]
    cfg = sb.with_config(f'[redis]\nurl = "{url.format(port=port)}"\ntimeout_s = 1')
    start = time.monotonic()
    run = run_checks(cfg, CHECKS)
    assert time.monotonic() - start < 60
    assert outcomes(run) == dict.fromkeys(CACHE_IDS, "failed")
    for check_id in CACHE_IDS:
        msg = run.one(check_id)["message"]
        assert msg.startswith("cannot reach Redis at redis") and reason in msg, msg
        assert "pw-9f2e" not in msg


def test_empty_url_skips_every_cache_check(cache_sandbox, run_checks):
    sb = cache_sandbox()
    run = run_checks(sb.with_config('[redis]\nurl = ""'), CHECKS)
    assert outcomes(run) == dict.fromkeys(CACHE_IDS, "skipped")
    assert run.one("cache_hit_ratio")["message"] == "[redis] url is empty: no cache to check"


def test_a_weekly_run_changes_nothing_in_redis(cache_sandbox, run_checks):
    sb = cache_sandbox("redis-no-ttl", "redis-ttl-over")
    with client(sb) as r:
        before = digest(r)  # its DUMPs touch every key: idle times count from here
    touched = time.monotonic()
    run = run_checks(sb.config, "-m", WEEKLY_BUT_LOAD)
    assert outcomes(run)["cache_ttl_policy"] == "failed"
    with client(sb) as r:
        idle = {k: r.object("idletime", k) for k in r.scan_iter(count=1000)}  # touches none
        since = time.monotonic() - touched
        assert digest(r) == before
    # the run read no key in a way that resets its idle time (GET would): every key has
    # been idle since the digest (1.5 s of slack for Redis's 1 s LRU clock)
    assert since > 2 and min(idle.values()) >= since - 1.5, (since, min(idle.values()))


GLOB_KEYS = [
    b"policy:1",
    b"policy:",
    b"template:ab",
    b"template:a\nb",
    b"temp:x",
    b"tempx",
    b"a[b",
    b"a*b",
    b"h?llo",
    b"hello",
    b"hallo",
    b"hxllo",
    b"\xff\xfekey",
]


@pytest.mark.parametrize(
    "pattern",
    [
        "policy:*",
        "temp*",
        "temp:?",
        "h[ae]llo",
        "h[^e]llo",
        "h[a-h]llo",
        "a\\*b",
        "a\\[b",
        "*",
        "\\?*",
    ],
)
def test_glob_matches_as_redis_scan_match_does(cache_sandbox, pattern):
    sb = cache_sandbox()
    with client(sb, db=1) as r:  # a db of its own: the sandbox's keys stay in db 0
        for key in GLOB_KEYS:
            r.set(key, b"1", ex=60)
        want = set(r.scan_iter(match=pattern, count=1000))
        r.flushdb()
    regex = glob_regex(pattern)
    assert {k for k in GLOB_KEYS if regex.match(k)} == want


def test_survey_reads_binary_and_long_keys_over_many_batches(cache_sandbox):
    sb = cache_sandbox()
    url = redis_url(sb)[: -len("/0")] + "/2"
    odd = [b"temp:a\r\n:1\r\n$-1\r\n", b"temp:\xff\x00", b"temp:" + b"k" * 20000]
    with client(sb, db=2) as r:
        p = r.pipeline(transaction=False)
        for n in range(2500):
            p.set(b"template:%d" % n, b"v" * 50, ex=100 + n % 1700)
        for key in odd:
            p.set(key, b"v")  # no TTL
        p.execute()
        s = survey(
            connect(url, 5), url, {"template:*": 1800, "temp:*": 300}, 3600, False, 10**6, 60
        )
        assert digest(r)[0] == 2503
    assert s.complete and s.inspected == 2503 and s.vanished == 0
    template, temp, other = s.patterns
    assert (template.keys, template.no_ttl, template.over, template.max_ttl_s) == (2500, 0, 0, 1799)
    assert (temp.keys, temp.no_ttl, other.keys) == (3, 3, 0)
    assert "temp:a\\x0d\\x0a:1\\x0d\\x0a$-1\\x0d\\x0a" in temp.no_ttl_examples  # one line
    assert "temp:\\xff\\x00" in temp.no_ttl_examples
