"""Faults: Redis stopped under load, and corrupt or partial bundles.

Redis is a real ``redis-server`` of this test's own (killed and restarted on the same port);
bundles are real trained bundles, damaged on disk the way a bad copy or a full disk would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil

import pytest

from artifacts.bundle import CURRENT_LINK, MANIFEST_FILE, BundleError, publish, resolve
from service.app import create_app
from service.settings import Settings
from tests.conftest import IN_CI
from tests.inprocess import (Load, RedisServer, copy_bundle, eventually, free_port, serve,
                             train_other_bundle)
from training.redis_push import push_profiles


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server this test may kill: no persistence but an explicit SAVE to its dir."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("CI requires redis-server for the fault tests")
        pytest.skip("no redis-server binary")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(binary, free_port(), workdir).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def second_bundle_root(tmp_path_factory):
    return train_other_bundle(tmp_path_factory.mktemp("second"))


def _page_views(profiles, demo_bundle) -> list[str]:
    users = [u for u, p in profiles.items() if len(p.purchased) >= 2 and p.candidate_ids()][:6]
    items = list(demo_bundle.items.ids[:6])
    paths = []
    for user, item in zip(users, items):
        paths += [f"/v1/users/{user}/recommendations?n=8", f"/v1/users/{user}/homepage?n=4",
                  f"/v1/users/{user}/size?item_id={item}",
                  f"/v1/items/{item}/similar?n=8&user_id={user}"]
    return paths


def _personal(o) -> bool:
    return (o.status == 200 and "/recommendations" in o.path and o.body["source"] == "personal"
            and o.body["degraded"] is False)


async def test_redis_stopped_under_load_degrades_then_recovers(own_redis, demo_bundle, profiles):
    push_profiles(demo_bundle.profile_records(), own_redis.url, prefix="reco", progress=False)
    own_redis.snapshot()  # so the restarted server comes back with the profiles
    settings = Settings(redis_url=own_redis.url, redis_retry_after_s=0.2, bundle_poll_s=0)
    app = create_app(settings, bundle=demo_bundle)
    async with serve(app) as client:
        load = Load(client, _page_views(profiles, demo_bundle), phase="up").start()
        try:
            await load.until(_personal, at_least=20, what="personal answers with Redis up")
            own_redis.kill()
            # Until the service has seen its connections close, it may still answer from
            # what its near cache read while Redis was up (valid: nothing can change in a
            # stopped Redis). Those answers are only required to be 200s.
            load.phase = "stopping"
            down_ready = await client.get("/ready")
            load.phase = "down"
            await load.until(lambda o: o.phase == o.done == "down", at_least=200,
                             what="answers with Redis stopped")
            own_redis.start()
            load.phase = "back"
            await load.until(lambda o: o.phase == "back" and _personal(o), at_least=20,
                             what="personal answers after Redis returned")
        finally:
            outcomes = await load.stop()
        back_ready = await client.get("/ready")

    failed = [(o.path, o.status, o.body) for o in outcomes if o.status != 200]
    assert not failed, f"{len(failed)} failed page views, e.g. {failed[:3]}"
    up = [o for o in outcomes if o.done == "up"]  # sent and answered before the kill
    # sent once the service had answered /ready without Redis, and answered before it returned
    down = [o for o in outcomes if o.phase == o.done == "down"]
    assert up and not any(o.body["degraded"] for o in up), "Redis up: nothing degraded"
    not_marked = [(o.path, o.body) for o in down if o.body["degraded"] is not True]
    assert not not_marked, f"answers without Redis must say degraded: {not_marked[:2]}"
    by_kind = {kind: [o for o in down if kind in o.path]
               for kind in ("/recommendations", "/homepage", "/size", "/similar")}
    assert all(by_kind.values()), "every page view kind ran while Redis was stopped"
    assert {o.body["source"] for o in by_kind["/recommendations"]} <= {"popular",
                                                                       "popular_market"}
    assert {o.body["audience"] for o in by_kind["/homepage"]} == {"profile_unavailable"}
    assert all(o.body["size"] is None for o in by_kind["/size"])
    assert down_ready.status_code == 503 and down_ready.json()["store_reachable"] is False
    assert back_ready.status_code == 200 and back_ready.json()["store_reachable"] is True


# -- corrupt and partial bundles ---------------------------------------------------------------

def _flip_byte(bundle):
    path = bundle / "neighbours_idx.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(bundle):
    path = bundle / "item_factors.npy"
    os.truncate(path, path.stat().st_size // 2)


def _remove_manifest(bundle):
    (bundle / MANIFEST_FILE).unlink()


def _remove_array(bundle):
    (bundle / "popular_idx.npy").unlink()


def _other_schema(bundle):
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    manifest["schema_version"] = 999
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))


DAMAGE = {
    "flipped_byte": (_flip_byte, "neighbours_idx.npy does not match its checksum"),
    "truncated": (_truncate, "item_factors.npy has"),
    "no_manifest": (_remove_manifest, "no manifest.json"),
    "missing_array": (_remove_array, "popular_idx.npy is missing"),
    "schema_version": (_other_schema, "bundle schema 999"),
}


def _damaged_copy(source_root, root, damage: str) -> str:
    """A copy of the bundle ``source_root`` serves, damaged, then made ``root``'s ``current``.

    Damaged before the switch, so a watcher polling meanwhile never sees it whole; switched
    with the same atomic link swap as ``publish`` (which itself refuses a directory with no
    manifest, one of the damages)."""
    version = copy_bundle(source_root, root)
    DAMAGE[damage][0](root / version)
    link = root / f".current-{version}"
    os.symlink(version, link)
    os.replace(link, root / CURRENT_LINK)
    return version


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_bundle_refused_at_start_up(demo_bundle_root, tmp_path, caplog, damage):
    _damaged_copy(demo_bundle_root, tmp_path, damage)
    app = create_app(Settings(bundle_dir=str(tmp_path), bundle_poll_s=0))

    async def start() -> None:
        async with app.lifespan():
            pytest.fail("the app started on a damaged bundle")

    with pytest.raises(BaseException) as raised:
        asyncio.run(start())
    errors = _leaves(raised.value)
    assert [type(e) for e in errors] == [BundleError], errors
    assert DAMAGE[damage][1] in str(errors[0])
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(lines) == 1 and lines[0].startswith("not starting: bundle refused:")
    assert DAMAGE[damage][1] in lines[0]


def _refusals(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "service.reload" and r.levelno == logging.ERROR]


@pytest.mark.parametrize("damage", list(DAMAGE))
async def test_damaged_bundle_refused_at_swap_previous_keeps_serving(
        demo_bundle_root, second_bundle_root, profiles, demo_bundle, tmp_path, caplog, damage):
    good = copy_bundle(demo_bundle_root, tmp_path)
    publish(tmp_path, good)
    settings = Settings(bundle_dir=str(tmp_path), bundle_poll_s=0.02, admin_token="s3cret")
    paths = [f"/v1/items/{i}/similar?n=5" for i in demo_bundle.items.ids[:5]] + ["/v1/homepage"]
    caplog.set_level(logging.INFO, logger="service.reload")
    async with serve(create_app(settings)) as client:
        load = Load(client, paths, workers=4, phase="good").start()
        try:
            await load.until(lambda o: True, at_least=20)
            bad = _damaged_copy(second_bundle_root, tmp_path, damage)
            load.phase = "damaged"
            await eventually(lambda: _refusals(caplog), what="the refusal log line")
            await asyncio.sleep(25 * settings.bundle_poll_s)  # many polls later, under load
            assert len(_refusals(caplog)) == 1, "the watcher must not retry a refused bundle"
            admin = await client.post("/admin/reload",
                                      headers={"Authorization": "Bearer s3cret"})
        finally:
            outcomes = await load.stop()
        ready = (await client.get("/ready")).json()

    assert all(o.status == 200 for o in outcomes)
    assert {o.body["bundle_version"] for o in outcomes} == {good}, "the good bundle kept serving"
    assert ready["bundle_version"] == good
    line = _refusals(caplog)[0].getMessage()
    assert bad in line and DAMAGE[damage][1] in line and f"still serving {good}" in line, line
    assert admin.status_code == 409, admin.text
    assert admin.json()["error"] == "bundle_refused" and DAMAGE[damage][1] in admin.json()["detail"]
    assert len(_refusals(caplog)) == 2, "an explicit reload retries and logs again"


async def test_watcher_swaps_a_good_bundle_after_refusing_a_bad_one(
        demo_bundle_root, second_bundle_root, tmp_path, caplog):
    good = copy_bundle(demo_bundle_root, tmp_path)
    publish(tmp_path, good)
    caplog.set_level(logging.INFO, logger="service.reload")
    settings = Settings(bundle_dir=str(tmp_path), bundle_poll_s=0.02)
    async with serve(create_app(settings)) as client:
        _damaged_copy(second_bundle_root, tmp_path, "flipped_byte")
        await eventually(lambda: _refusals(caplog), what="the refusal")
        repaired = copy_bundle(second_bundle_root, tmp_path, name="repaired")
        publish(tmp_path, repaired)
        await eventually(lambda: any("hot-swapped" in r.getMessage() for r in caplog.records),
                         what="the swap to the repaired bundle")
        ready = (await client.get("/ready")).json()
        assert len(_refusals(caplog)) == 1
        # current moved on and came back to the bad bundle: refused, and said so, again
        bad = next(p.name for p in tmp_path.iterdir() if p.name not in (good, "repaired")
                   and not p.name.startswith(".") and p.name != "current")
        publish_link = tmp_path / ".current-bad"
        os.symlink(bad, publish_link)
        os.replace(publish_link, tmp_path / "current")
        await eventually(lambda: len(_refusals(caplog)) == 2, what="the second refusal")
    assert ready["bundle_version"] == resolve(second_bundle_root).name != good
