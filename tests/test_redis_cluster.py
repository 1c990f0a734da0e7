"""The whole service on a real Redis Cluster of 3 masters (started locally for the session).

Profiles are pushed by the trainer's writer, the app is built on a ``redis+cluster://`` store,
and page views, live events, batch picks and erasure are checked end to end, down to which keys
each node holds. The store-level contract on the cluster is in ``test_profile_store.py``.
"""

import json

import pytest
from litestar.testing import AsyncTestClient

from artifacts.profiles import KeyScheme, decode_live
from service.app import create_app
from service.settings import Settings
from service.store import RedisProfileStore
from tests.redis_cluster import LocalCluster, keys_on_nodes
from training.erasures import read_erasures
from training.redis_push import push_profiles, redis_client


@pytest.fixture
def pushed(demo_bundle, redis_cluster_url, redis_cluster_prefix):
    """The demo bundle's profiles on the cluster, written the way the trainer writes them."""
    return push_profiles(demo_bundle.profile_records(), redis_cluster_url,
                         prefix=redis_cluster_prefix, progress=False)


@pytest.fixture
async def client(pushed, demo_bundle, redis_cluster_url, redis_cluster_prefix):
    store = RedisProfileStore(redis_cluster_url, prefix=redis_cluster_prefix, timeout_s=1.0)
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        yield c


@pytest.fixture
def raw(redis_cluster_url):
    client = redis_client(redis_cluster_url)
    yield client
    client.close()


def _known_user(profiles):
    return next(u for u, p in profiles.items() if len(p.purchased) >= 3 and p.market
                and len(p.candidate_ids()) > 10 and p.consent_personalisation is not False)


def _popular_items(bundle, k):
    return [bundle.items.id(i) for i in bundle["popular_idx"][0][:k]]


async def _recs(client, user, n=20):
    r = await client.get(f"/v1/users/{user}/recommendations", params={"n": n})
    assert r.status_code == 200, r.text
    return r.json()


def test_profiles_are_spread_over_every_master(pushed, profiles, redis_cluster_url,
                                               redis_cluster_prefix):
    held = keys_on_nodes(redis_cluster_url, f"{redis_cluster_prefix}:*")
    assert len(held) == 3 and sum(map(len, held.values())) == pushed == len(profiles)
    assert all(len(keys) > pushed // 6 for keys in held.values()), {
        node: len(keys) for node, keys in held.items()}


async def test_ready_names_the_cluster(client):
    r = await client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["store"] == "redis-cluster" and r.json()["store_reachable"] is True


async def test_page_views_are_personal_and_not_degraded(client, profiles, demo_bundle):
    from artifacts import ranking
    from artifacts.catalog import Catalog

    user = _known_user(profiles)
    body = await _recs(client, user)
    assert body["source"] == "personal" and body["degraded"] is False
    catalog = Catalog(demo_bundle)
    not_again = {catalog.ids[i] for i in ranking.not_again(catalog, profiles[user])}
    ids = [i["item_id"] for i in body["items"]]
    assert not set(ids) & not_again
    assert ids[:5] == [c for c in profiles[user].candidate_ids() if c not in not_again][:5]
    home = await client.get(f"/v1/users/{user}/homepage", params={"n": 5})
    assert home.status_code == 200, home.text
    assert home.json()["personalised"] is True and home.json()["degraded"] is False


async def test_events_take_effect(client, profiles, demo_bundle, raw, redis_cluster_prefix):
    user = _known_user(profiles)
    top = (await _recs(client, user, n=5))["items"][0]["item_id"]
    newcomer = "cluster-newcomer"
    bought = _popular_items(demo_bundle, 2)
    # one batch, three subjects in different slots: the live update spans nodes
    r = await client.post("/v1/events", json={"events": [
        {"event_id": "c1", "type": "purchase", "item_id": top, "user_id": user},
        {"event_id": "c2", "type": "purchase", "item_id": bought[0], "user_id": newcomer},
        {"event_id": "c3", "type": "purchase", "item_id": bought[1], "user_id": newcomer},
        {"event_id": "c4", "type": "view", "item_id": bought[0], "session_id": "cl-sess"}]})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 4 and r.json()["subjects"] == 3
    assert top not in [i["item_id"] for i in (await _recs(client, user, n=50))["items"]]
    after = await _recs(client, newcomer)
    assert after["source"] == "personal" and after["degraded"] is False
    assert not {i["item_id"] for i in after["items"]} & set(bought)
    keys = KeyScheme(redis_cluster_prefix)
    assert [p.item_id for p in decode_live(raw.get(keys.live(user))).purchased] == [top]
    assert raw.ttl(keys.session("cl-sess")) > 0
    again = await client.post("/v1/events", json={"events": [
        {"event_id": "c1", "type": "purchase", "item_id": top, "user_id": user}]})
    assert again.json()["duplicates"] == 1


async def test_batch_picks_read_and_record_across_nodes(client, profiles, raw,
                                                        redis_cluster_prefix):
    users = list(profiles)[:60]
    body = {"users": users, "n": 4, "campaign": "weekly", "record": True}
    first = await client.post("/v1/picks", json=body)
    second = await client.post("/v1/picks", json=body)
    assert first.status_code == second.status_code == 200, first.text
    a = [json.loads(line) for line in first.text.splitlines()]
    b = [json.loads(line) for line in second.text.splitlines()]
    assert [line["user_id"] for line in a] == users
    for x, y in zip(a, b):
        assert not {i["item_id"] for i in x["items"]} & {i["item_id"] for i in y["items"]}
    keys = KeyScheme(redis_cluster_prefix)
    assert raw.exists(*[keys.sent(u) for u in users[:5]]) == 5  # EXISTS split per slot


async def test_erasure_leaves_no_key_on_any_node(client, profiles, demo_bundle, redis_cluster_url,
                                                 redis_cluster_prefix):
    user = _known_user(profiles)
    item = _popular_items(demo_bundle, 1)[0]
    await client.post("/v1/events", json={"events": [
        {"event_id": "e1", "type": "view", "item_id": item, "session_id": "erase-sess"},
        {"event_id": "e2", "type": "purchase", "item_id": item, "user_id": user}]})
    assert (await client.post("/v1/sessions/erase-sess/identify",
                              json={"user_id": user})).status_code == 200
    await client.post("/v1/picks", json={"users": [user], "campaign": "weekly", "record": True})

    def held():
        return [k for keys in keys_on_nodes(redis_cluster_url, f"{redis_cluster_prefix}:*").values()
                for k in keys if f"{{{user}}}" in k or "erase-sess" in k]

    assert len(held()) == 4  # batch, live, sent, the linked session
    r = await client.delete(f"/v1/users/{user}")
    assert r.status_code == 200 and r.json()["keys_deleted"] == 4
    assert held() == []
    assert user in read_erasures(redis_cluster_url, redis_cluster_prefix)
    after = await _recs(client, user)
    assert after["source"] == "popular" and after["degraded"] is False


@pytest.fixture
def own_cluster(redis_cluster_url, tmp_path):
    """A cluster of its own, for a test that crashes a node (skips or fails like the shared one)."""
    cluster = LocalCluster(tmp_path / "cluster")
    cluster.start()
    yield cluster
    cluster.stop()


async def test_a_crashed_master_degrades_page_views_and_recovery_needs_no_restart(
        own_cluster, demo_bundle, profiles):
    url = own_cluster.url
    push_profiles(demo_bundle.profile_records(), url, prefix="fault", progress=False)
    store = RedisProfileStore(url, prefix="fault", timeout_s=0.2, retry_after_s=0.2)
    user = _known_user(profiles)
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        assert (await _recs(c, user))["degraded"] is False
        # the master that holds this customer's slot (others keep serving their customers)
        node = next(n for n, keys in keys_on_nodes(url, f"fault:*{{{user}}}*").items() if keys)
        index = own_cluster.ports.index(int(node.rpartition(":")[2]))
        own_cluster.kill_node(index)
        for _ in range(3):
            body = await _recs(c, user, n=8)
            assert body["degraded"] is True and len(body["items"]) == 8
        assert (await c.get("/ready")).status_code == 503
        own_cluster.restart_node(index)
        ready = await c.get("/ready")
        assert ready.status_code == 200 and ready.json()["store_reachable"] is True
        body = await _recs(c, user)  # the restarted node lost its data: not personal now
        assert body["degraded"] is False and body["source"] != "personal"
        r = await c.post("/v1/events", json={"events": [
            {"event_id": "f1", "type": "view", "item_id": body["items"][0]["item_id"],
             "user_id": user}]})
        assert r.status_code == 200 and r.json()["accepted"] == 1
