"""Shared fixtures: a real Redis (never a mock), a trained demo bundle, the public data.

Redis: ``$RECO_TEST_REDIS_URL`` or 127.0.0.1:6379 when it answers; otherwise a
``redis-server`` is started on a free port for the session. Where neither is possible the Redis
tests skip - except under CI (``$CI`` set), where that is a failure. Every test gets its own key
prefix and its keys are deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
IN_CI = bool(os.environ.get("CI"))


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"CI requires a real Redis: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("RECO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if _answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable(f"no Redis at {url} and no redis-server binary to start one")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _answers(url):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        _unavailable(f"started redis-server on port {port} but it does not answer")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def delete_prefix(url: str, prefix: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
        return len(keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_url):
    """A key prefix private to this test; its keys are removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture
def raw_redis(redis_url):
    """A plain client of the test Redis, to look at keys the way an operator would."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory):
    """A Redis Cluster (``redis+cluster://`` URL): ``$RECO_TEST_REDIS_CLUSTER_URL``, or a local
    3-master cluster started for the session from ``redis-server`` processes
    (``tests/redis_cluster.py``); skips without them, except under CI."""
    url = os.environ.get("RECO_TEST_REDIS_CLUSTER_URL")
    if url:
        yield url
        return
    from tests.redis_cluster import ClusterUnavailable, LocalCluster

    try:
        cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
        cluster.start()
    except ClusterUnavailable as exc:
        _unavailable(str(exc))
    yield cluster.url
    cluster.stop()


@pytest.fixture
def redis_cluster_prefix(redis_cluster_url):
    """A key prefix private to this test on the cluster; its keys are removed afterwards."""
    from tests.redis_cluster import delete_prefix_on_nodes

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_prefix_on_nodes(redis_cluster_url, prefix)


@pytest.fixture(scope="session")
def dead_redis_url():
    """A Redis URL on a port where nothing listens: a real, unreachable server."""
    return f"redis://127.0.0.1:{_free_port()}/0"


@pytest.fixture(scope="session")
def shop():
    from training.data.synthetic import generate_shop

    return generate_shop(seed=7, n_customers=600, n_items=400, days=240)


@pytest.fixture(scope="session")
def demo_bundle_root(shop, tmp_path_factory):
    """A bundle trained once per session on a small demo shop (no Redis)."""
    from training.config import TrainConfig
    from training.pipeline import train

    root = tmp_path_factory.mktemp("bundles")
    train(shop, TrainConfig(factors=16, iterations=5, candidates=40), root, progress=False)
    return root


@pytest.fixture(scope="session")
def demo_bundle(demo_bundle_root):
    from artifacts.bundle import Bundle

    return Bundle.open(demo_bundle_root)


@pytest.fixture(scope="module")
def profiles(demo_bundle):
    """The demo bundle's batch profiles by customer id (read-only: copy before changing)."""
    return {r.user_id: r.profile for r in demo_bundle.profile_records()}


@pytest.fixture
async def client(demo_bundle):
    """A test client of the service on the demo bundle with the embedded profile store."""
    from litestar.testing import AsyncTestClient

    from service.app import create_app
    from service.settings import Settings
    from service.store import MemoryProfileStore

    store = MemoryProfileStore(demo_bundle.profile_records())
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        yield c


def shared_dataset(name: str) -> Path:
    """Directory of a public dataset; skips (fails under CI) when it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        if IN_CI:
            pytest.fail(f"CI requires the public dataset at {path}")
        pytest.skip(f"public dataset not found at {path}")
    return path
