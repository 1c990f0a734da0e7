"""``GET /metrics``: Prometheus text with per-route latency, degraded and fallback answers, error
responses, the bundle version and Redis errors; several workers report as one.

The metric objects are process-wide (as prometheus-client keeps them), so in-process tests
compare values before and after their own requests.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.metrics import FALLBACK_SOURCES, mark_dead_workers
from service.settings import Settings
from service.store import MemoryProfileStore, RedisProfileStore

ROOT = Path(__file__).resolve().parents[1]
RECS = "/v1/users/{user_id}/recommendations"
SIMILAR = "/v1/items/{item_id}/similar"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition: (name, labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def scrape(client) -> str:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def known_user(profiles) -> str:
    return next(u for u, p in profiles.items() if len(p.purchased) >= 3)


async def test_latency_histogram_per_route_template_never_the_path(client, profiles):
    user = known_user(profiles)
    item = profiles[user].purchased[0]
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(f"/v1/users/{user}/recommendations")).status_code == 200
    assert (await client.get(f"/v1/items/{item}/similar")).status_code == 200
    assert (await client.get("/v1/items/no-such-item/similar")).status_code == 404
    assert (await client.get(f"/no/such/route/{user}")).status_code == 404
    after = await scrape(client)

    count = "reco_http_request_duration_seconds_count"
    assert value(after, count, route=RECS, method="GET") - \
        value(before, count, route=RECS, method="GET") == 3
    assert value(after, count, route=SIMILAR, method="GET") - \
        value(before, count, route=SIMILAR, method="GET") == 2
    # a histogram: cumulative buckets ending in +Inf == count, and a sum of the seconds
    inf = value(after, "reco_http_request_duration_seconds_bucket", route=RECS, method="GET",
                le="+Inf")
    assert inf == value(after, count, route=RECS, method="GET")
    assert 0 < value(after, "reco_http_request_duration_seconds_sum", route=RECS,
                     method="GET") < 60
    errors = "reco_http_error_responses_total"
    assert value(after, errors, route=SIMILAR, method="GET", status="404") - \
        value(before, errors, route=SIMILAR, method="GET", status="404") == 1
    # a path no route matches: one label for all of them
    assert value(after, errors, route="unmatched", method="*", status="404") - \
        value(before, errors, route="unmatched", method="*", status="404") == 1
    # customer and item ids are personal data / unbounded: never in a label
    assert user not in after and "no-such-item" not in after


async def test_fallback_answers_counted_by_source(client):
    before = await scrape(client)
    r = await client.get("/v1/users/never-seen-customer/recommendations")
    assert r.status_code == 200 and r.json()["degraded"] is False
    source = r.json()["source"]
    assert source in FALLBACK_SOURCES
    after = await scrape(client)
    name = "reco_fallback_answers_total"
    assert value(after, name, route=RECS, source=source) - \
        value(before, name, route=RECS, source=source) == 1


async def test_degraded_answers_counted_when_redis_is_down(demo_bundle, dead_redis_url,
                                                           profiles):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.1, retry_after_s=5)
    app = create_app(Settings(), bundle=demo_bundle, store=store)
    user = known_user(profiles)
    async with AsyncTestClient(app) as c:
        before = await scrape(c)
        for path in (f"/v1/users/{user}/recommendations", f"/v1/users/{user}/homepage",
                     f"/v1/users/{user}/recommendations"):
            r = await c.get(path)
            assert r.status_code == 200 and r.json()["degraded"] is True
        after = await scrape(c)
    name = "reco_degraded_answers_total"
    assert value(after, name, route=RECS) - value(before, name, route=RECS) == 2
    homepage = "/v1/users/{user_id}/homepage"
    assert value(after, name, route=homepage) - value(before, name, route=homepage) == 1


async def test_redis_errors_counted(demo_bundle, dead_redis_url, profiles):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.1, retry_after_s=0)
    app = create_app(Settings(), bundle=demo_bundle, store=store)
    async with AsyncTestClient(app) as c:
        before = await scrape(c)
        for _ in range(2):
            await c.get(f"/v1/users/{known_user(profiles)}/recommendations")
        after = await scrape(c)
    name = "reco_redis_errors_total"
    assert value(after, name, op="read") - value(before, name, op="read") == 2


async def test_bundle_version_is_reported(client, demo_bundle):
    text = await scrape(client)
    assert value(text, "reco_bundle_info", version=demo_bundle.version) == 1


async def test_openmetrics_on_request(client):
    r = await client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


async def test_metrics_can_be_turned_off(demo_bundle):
    app = create_app(Settings(metrics=False), bundle=demo_bundle,
                     store=MemoryProfileStore(demo_bundle.profile_records()))
    async with AsyncTestClient(app) as c:
        assert (await c.get("/metrics")).status_code == 404
        assert (await c.get("/health")).status_code == 200


def test_dead_workers_live_gauges_are_dropped(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid, live_pid = int(finished.stdout), os.getpid()
    for pid in (dead_pid, live_pid):
        (tmp_path / f"gauge_livemax_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    assert mark_dead_workers(str(tmp_path)) == [dead_pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead_pid}.db", f"counter_{live_pid}.db", f"gauge_livemax_{live_pid}.db"])


# -- the real server: several worker processes ----------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # new connection each
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def test_serve_two_workers_report_as_one_and_log_json(demo_bundle_root, redis_url, redis_prefix,
                                                      tmp_path):
    """``python -m service serve --workers 2``: /metrics on either worker counts every
    worker's requests (prometheus multiprocess mode in a directory serve sets up and removes),
    and every process logs JSON lines, none naming the customer in the requested paths."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(RECO_REDIS_PREFIX=redis_prefix, RECO_LOG_FORMAT="json", RECO_ACCESS_LOG="true",
               RECO_BUNDLE_POLL_S="0")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--workers", "2", "--port", str(port),
             "--bundle", str(demo_bundle_root), "--redis-url", redis_url],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # both workers started (granian logs "Started worker-N"), not only the first to answer:
        # a worker that gets the SIGINT below between its lifespan start-up and its start can
        # hang in granian's signal handling and never exit
        deadline = time.monotonic() + 60
        while True:
            try:
                if (_get(port, "/ready")[0] == 200
                        and log_path.read_text().count('"Started worker-') == 2):
                    break
            except OSError:
                pass
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        requests = 40
        for i in range(requests):
            assert _get(port, f"/v1/users/secret-customer-{i}/recommendations")[0] == 200
        name = "reco_http_request_duration_seconds_count"
        deadline = time.monotonic() + 15  # each worker flushes about once a second
        while True:
            text = _get(port, "/metrics")[1]
            counted = value(text, name, route=RECS, method="GET")
            if counted == requests or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert counted == requests
        assert value(text, "reco_fallback_answers_total", route=RECS,
                     source="popular_market") + value(text, "reco_fallback_answers_total",
                                                      route=RECS, source="popular") == requests
        assert sum(v for (n, _), v in samples(text).items() if n == "reco_bundle_info") == 1
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)

    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    access = [r for r in records if r["logger"] == "service.access"]
    assert len([r for r in access if r.get("route") == RECS]) == requests
    assert all(r["status"] == 200 and r["method"] == "GET" for r in access)
    assert "secret-customer" not in log_path.read_text()
    assert any(r["logger"] == "_granian" for r in records)  # the server's own lines too
    shared = [r["message"] for r in records if "workers share" in r["message"]]
    assert len(shared) == 1
    metrics_dir = Path(shared[0].split("share ", 1)[1].split(" ")[0])
    assert metrics_dir.name.startswith("reco-metrics-") and not metrics_dir.exists()
