"""Hot swap of the bundle under load: by the watcher when ``current`` changes, by
``POST /admin/reload`` and by ``SIGHUP``; zero failed requests, and every answer comes whole
from one bundle.

Two real bundles of the demo shop, trained with different settings, so their answers differ;
profiles in the real Redis. Each answer is compared with what the bundle it names gives when
asked directly (outside the app), which is how a response mixing two bundles would show.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
import weakref

import httpx
import msgspec
import pytest

from artifacts.bundle import Bundle, publish
from artifacts.catalog import Catalog
from service.app import create_app
from service.recommender import Recommender
from service.settings import Settings
from service.store import MemoryProfileStore
from tests.conftest import ROOT
from tests.inprocess import (Load, copy_bundle, eventually, free_port, serve,
                             train_other_bundle)
from training.redis_push import push_profiles

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def second_bundle_root(tmp_path_factory):
    return train_other_bundle(tmp_path_factory.mktemp("second"))


@pytest.fixture
def root(tmp_path, demo_bundle_root, second_bundle_root):
    """A bundles root holding both bundles, the demo one current; returns (root, a, b)."""
    a = copy_bundle(demo_bundle_root, tmp_path)
    b = copy_bundle(second_bundle_root, tmp_path)
    publish(tmp_path, a)
    return tmp_path, a, b


@pytest.fixture
def redis_settings(redis_url, redis_prefix, demo_bundle):
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    return {"redis_url": redis_url, "redis_prefix": redis_prefix}


async def _expected(bundle_root, version: str, records, paths: list[str]) -> dict[str, dict]:
    """Each path's answer straight from the bundle ``version`` (no app, no HTTP)."""
    recommender = Recommender(Catalog(Bundle.open(bundle_root / version)),
                              MemoryProfileStore(records))
    answers = {}
    for path in paths:
        parts = path.split("?")[0].split("/")
        if parts[-1] == "similar":
            answer = await recommender.similar(parts[-2], n=8)
        else:
            answer = await recommender.for_user(parts[-2], n=8)
        answers[path] = msgspec.json.decode(msgspec.json.encode(answer))  # as sent
    return answers


def _paths(demo_bundle, profiles) -> list[str]:
    users = [u for u, p in profiles.items() if p.candidates][:8]
    items = list(demo_bundle.items.ids[:40:5])
    return ([f"/v1/items/{i}/similar?n=8" for i in items]
            + [f"/v1/users/{u}/recommendations?n=8" for u in users])


async def _checked_paths(bundle_root, a, b, demo_bundle, profiles):
    """Paths whose answers differ between the two bundles, with the answers of each."""
    paths = _paths(demo_bundle, profiles)
    records = list(demo_bundle.profile_records())
    expected = {a: await _expected(bundle_root, a, records, paths),
                b: await _expected(bundle_root, b, records, paths)}
    differing = [p for p in paths if _core(expected[a][p]) != _core(expected[b][p])]
    assert len(differing) >= 3, "the two bundles should answer differently"
    return paths, expected


def _core(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "bundle_version"}


def _assert_clean_swap(outcomes, expected, a: str, b: str) -> None:
    failed = [(o.path, o.status, o.body) for o in outcomes if o.status != 200]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed: {failed[:3]}"
    versions = [o.body["bundle_version"] for o in outcomes]
    assert set(versions) == {a, b}, "answers from both bundles, nothing else"
    mixed = [o.path for o in outcomes if o.body != expected[o.body["bundle_version"]][o.path]]
    assert not mixed, f"answers that are not their bundle's own: {mixed[:3]}"
    first_b = min(o.done_seq for o in outcomes if o.body["bundle_version"] == b)
    back = [o for o in outcomes if o.sent_seq > first_b and o.body["bundle_version"] == a]
    assert not back, "after the first answer from the new bundle, no request gets the old one"


async def test_watcher_swaps_when_current_changes_under_load(root, redis_settings, demo_bundle,
                                                             profiles):
    bundle_root, a, b = root
    paths, expected = await _checked_paths(bundle_root, a, b, demo_bundle, profiles)
    settings = Settings(bundle_dir=str(bundle_root), bundle_poll_s=0.05, **redis_settings)
    async with serve(create_app(settings)) as client:
        load = Load(client, paths).start()
        try:
            await load.until(lambda o: True, at_least=100)
            publish(bundle_root, b)
            load.phase = "published"
            await load.until(lambda o: o.status == 200 and o.body["bundle_version"] == b,
                             at_least=200, what="answers from the new bundle")
        finally:
            outcomes = await load.stop()
        ready = (await client.get("/ready")).json()
    _assert_clean_swap(outcomes, expected, a, b)
    assert ready["bundle_version"] == b


async def test_admin_reload_swaps_under_load(root, redis_settings, demo_bundle, profiles):
    bundle_root, a, b = root
    paths, expected = await _checked_paths(bundle_root, a, b, demo_bundle, profiles)
    settings = Settings(bundle_dir=str(bundle_root), bundle_poll_s=0, admin_token=TOKEN,
                        **redis_settings)
    async with serve(create_app(settings)) as client:
        load = Load(client, paths).start()
        try:
            publish(bundle_root, b)  # no watcher: nothing changes until asked
            await load.until(lambda o: True, at_least=200)
            assert {o.body["bundle_version"] for o in load.outcomes} == {a}
            reloaded = await client.post("/admin/reload", headers=AUTH)
            load.phase = "reloaded"
            await load.until(lambda o: o.phase == "reloaded", at_least=200)
        finally:
            outcomes = await load.stop()
        again = await client.post("/admin/reload", headers=AUTH)
    assert reloaded.status_code == 200, reloaded.text
    assert msgspec.json.decode(reloaded.content) | {"pid": 0} == {
        "outcome": "swapped", "bundle_version": b, "previous_version": a,
        "target": str((bundle_root / b).resolve()), "reason": None, "pid": 0}
    assert {o.body["bundle_version"] for o in outcomes if o.phase == "reloaded"} == {b}
    _assert_clean_swap(outcomes, expected, a, b)
    assert again.status_code == 200 and again.json()["outcome"] == "unchanged"


async def test_admin_endpoint_needs_its_token(root):
    bundle_root, _, _ = root
    async with serve(create_app(Settings(bundle_dir=str(bundle_root), bundle_poll_s=0))) as c:
        disabled = await c.post("/admin/reload", headers=AUTH)
    assert disabled.status_code == 403
    assert "set RECO_ADMIN_TOKEN" in disabled.json()["detail"]
    settings = Settings(bundle_dir=str(bundle_root), bundle_poll_s=0, admin_token=TOKEN)
    async with serve(create_app(settings)) as c:
        missing = await c.post("/admin/reload")
        wrong = await c.post("/admin/reload", headers={"Authorization": "Bearer nope"})
        right = await c.post("/admin/reload", headers=AUTH)
    for response in (missing, wrong):
        assert response.status_code == 401
        assert "Authorization: Bearer" in response.json()["detail"]
    assert right.status_code == 200 and right.json()["outcome"] == "unchanged"


async def test_sighup_reloads_in_process(root):
    bundle_root, a, b = root
    app = create_app(Settings(bundle_dir=str(bundle_root), bundle_poll_s=0))
    async with serve(app) as client:
        assert app.state.reloader._signal_installed, "SIGHUP handler in the main thread"
        publish(bundle_root, b)
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: app.state.recommender.catalog.version == b, what="SIGHUP swap")
        ready = (await client.get("/ready")).json()
    assert ready["bundle_version"] == b


def _mapped(path) -> list[str]:
    with open("/proc/self/maps") as fh:
        return [line for line in fh if str(path) in line]


async def test_old_bundle_is_released_after_swap(root):
    bundle_root, a, b = root
    settings = Settings(bundle_dir=str(bundle_root), bundle_poll_s=0, admin_token=TOKEN)
    app = create_app(settings)
    async with serve(app) as client:
        old = weakref.ref(app.state.reloader.serving.bundle)
        old_dir = (bundle_root / a).resolve()
        assert _mapped(old_dir), "the served bundle is memory-mapped"
        await client.get(f"/v1/items/{app.state.recommender.catalog.ids[0]}/similar")
        publish(bundle_root, b)
        assert (await client.post("/admin/reload", headers=AUTH)).json()["outcome"] == "swapped"
        r = await client.get(f"/v1/items/{app.state.recommender.catalog.ids[0]}/similar")
        assert r.json()["bundle_version"] == b
        gc.collect()
        assert old() is None, "nothing holds the old bundle once its requests are done"
        assert not _mapped(old_dir), "the old bundle's memory maps are closed"


def test_every_server_worker_swaps_under_load(root, redis_settings, tmp_path):
    """The real server (granian, two worker processes, real HTTP): each worker's own watcher
    swaps, and not one request fails."""
    bundle_root, a, b = root
    port = free_port()
    env = {**os.environ, "RECO_BUNDLE_POLL_S": "0.2",
           "RECO_REDIS_PREFIX": redis_settings["redis_prefix"]}
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--workers", "2", "--port", str(port),
             "--bundle", str(bundle_root), "--redis-url", redis_settings["redis_url"]],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

        def swaps() -> int:
            return log_path.read_text().count(f"hot-swapped bundle {a} -> {b}")

        async def run() -> list:
            items = list(Bundle.open(bundle_root / a).items.ids[:20])
            paths = [f"/v1/items/{i}/similar?n=8" for i in items]
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                load = Load(client, paths).start()
                try:
                    await load.until(lambda o: True, at_least=100)
                    publish(bundle_root, b)
                    await eventually(lambda: swaps() == 2, bound_s=60, what="both workers")
                    load.phase = "swapped"
                    await load.until(lambda o: o.phase == "swapped", at_least=100)
                finally:
                    outcomes = await load.stop()
            return outcomes

        outcomes = asyncio.run(run())
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    failed = [(o.status, o.body) for o in outcomes if o.status != 200]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed: {failed[:3]}"
    assert {o.body["bundle_version"] for o in outcomes if o.phase == "swapped"} == {b}
    assert {o.body["bundle_version"] for o in outcomes} == {a, b}
