"""Live events, fold-in, sessions and erasure, end to end on real Redis."""

import asyncio
import datetime as dt
import time

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from artifacts.catalog import Catalog
from artifacts.profiles import KeyScheme, decode_live
from service.app import create_app
from service.events import parse_batch
from service.ingest import MAX_LINKED_SESSIONS, EventIngestor
from service.recommender import Recommender
from service.settings import Settings
from service.store import RedisProfileStore, StoreUnavailable
from training.redis_push import push_profiles


@pytest.fixture
async def client(demo_bundle, redis_url, redis_prefix):
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0)
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        yield c


def _event(eid, kind, item, user=None, session=None, **extra):
    event = {"event_id": eid, "type": kind, "item_id": item, **extra}
    if user:
        event["user_id"] = user
    if session:
        event["session_id"] = session
    return event


def _popular_items(bundle, k=6):
    return [bundle.items.id(i) for i in bundle["popular_idx"][0][:k]]


async def _recs(client, user, n=20):
    r = await client.get(f"/v1/users/{user}/recommendations", params={"n": n})
    assert r.status_code == 200, r.text
    return r.json()


async def test_new_customer_becomes_personal_after_two_purchases(client, demo_bundle):
    user = "brand-new-customer"
    before = await _recs(client, user)
    assert before["source"] == "popular"
    bought = _popular_items(demo_bundle, 2)
    r = await client.post("/v1/events", json={"events": [
        _event("e1", "purchase", bought[0], user=user),
        _event("e2", "purchase", bought[1], user=user)]})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 2, "duplicates": 0, "subjects": 1, "folded": 1}
    after = await _recs(client, user)
    ids = [i["item_id"] for i in after["items"]]
    assert after["source"] == "personal"
    assert ids != [i["item_id"] for i in before["items"]]
    assert not set(ids) & set(bought), "what was just bought is never recommended"
    assert after["items"][0]["source"] == "personal_live"


async def test_known_customer_purchase_is_excluded_at_once(client, profiles):
    user = next(u for u, p in profiles.items() if len(p.candidate_ids()) > 10)
    top = (await _recs(client, user, n=5))["items"][0]["item_id"]
    r = await client.post("/v1/events", json={"events": [_event("k1", "purchase", top, user=user)]})
    assert r.status_code == 200
    assert top not in [i["item_id"] for i in (await _recs(client, user, n=50))["items"]]


async def test_buy_again_item_goes_at_once_when_bought_live(client, profiles):
    """Repurchasable items bought before training may come back as "buy again"; bought
    again today, they are gone from the next answer."""
    user, item = next((u, p.candidate_ids()[k]) for u, p in profiles.items()
                      for k, source in enumerate(p.candidate_sources()[:5])
                      if source == "buy_again")
    assert item in [i["item_id"] for i in (await _recs(client, user, n=30))["items"]]
    await client.post("/v1/events", json={"events": [_event("b1", "purchase", item, user=user)]})
    assert item not in [i["item_id"] for i in (await _recs(client, user, n=100))["items"]]


async def test_resent_batch_is_applied_once(client, raw_redis, redis_prefix, demo_bundle):
    items = _popular_items(demo_bundle, 3)
    batch = {"events": [_event(f"v{i}", "view", item, user="viewer-1")
                        for i, item in enumerate(items)]}
    first = (await client.post("/v1/events", json=batch)).json()
    second = (await client.post("/v1/events", json=batch)).json()
    assert first["accepted"] == 3 and first["duplicates"] == 0
    assert second["accepted"] == 0 and second["duplicates"] == 3
    live = decode_live(raw_redis.get(KeyScheme(redis_prefix).live("viewer-1")))
    assert [v.item_id for v in live.viewed] == items[::-1]
    assert raw_redis.ttl(KeyScheme(redis_prefix).live("viewer-1")) > 0


async def test_malformed_batch_names_each_bad_event_and_applies_nothing(client, raw_redis,
                                                                        redis_prefix):
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    r = await client.post("/v1/events", json={"events": [
        _event("ok-1", "view", "i00001", user="careful-user"),
        _event("bad-type", "like", "i00002", user="careful-user"),
        {"event_id": "no-subject", "type": "view", "item_id": "i00003"},
        _event("bad-id", "view", "has space", user="careful-user"),
        _event("later", "view", "i00004", user="careful-user", ts=future),
        _event("extra", "view", "i00005", user="careful-user", colour="red"),
    ]})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "bad_request"
    keys = [f["key"] for f in body["fields"]]
    assert keys == ["events[1].type", "events[2] (no-subject)", "events[3].item_id",
                    "events[4] (later).ts", "events[5].colour"]
    assert "nothing was applied" in body["detail"]
    assert "events[5].colour: Object contains unknown field `colour`" in body["detail"]
    assert "at `$" not in body["detail"], "paths are the batch's, not msgspec's within an event"
    assert raw_redis.get(KeyScheme(redis_prefix).live("careful-user")) is None


@pytest.mark.parametrize("body,error,message", [
    (b"not json", "invalid_body", "request body is not valid JSON"),
    (b"", "invalid_body", "a JSON request body is required"),
    (b'[{"event_id": "e", "type": "view", "item_id": "i", "user_id": "u"}]', "invalid_body",
     "body: Expected `object`, got `array`"),
    (b'{"events": "x"}', "invalid_body", "events: Expected `array`, got `str`"),
    (b'{"events": [{"event_id": "e\xff", "type": "view", "item_id": "i", "user_id": "u"}]}',
     "invalid_body", "request body is not valid JSON"),
    (b'{"events": []}', "bad_request", "at least one event"),
    (b'{"events": [' + b",".join([b'{"event_id":"e","type":"view","item_id":"i"}'] * 1001)
     + b"]}", "bad_request", "at most 1000 events"),
])
async def test_bad_bodies_are_400(client, body, error, message):
    """A body that is not a batch is ``invalid_body`` as on every POST; a batch with bad events
    or too many or none is ``bad_request``. Either way nothing is applied."""
    r = await client.post("/v1/events", content=body,
                          headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == error
    assert message in r.json()["detail"] and "nothing was applied" in r.json()["detail"]


async def test_oversized_body_is_413(demo_bundle):
    from service.store import MemoryProfileStore

    app = create_app(Settings(max_body_kb=1), bundle=demo_bundle, store=MemoryProfileStore())
    async with AsyncTestClient(app) as c:
        r = await c.post("/v1/events", content=b"x" * 5000,
                         headers={"content-type": "application/json"})
        assert r.status_code == 413


async def test_session_signals_carry_over_on_identify(client, raw_redis, redis_prefix,
                                                      demo_bundle):
    items = _popular_items(demo_bundle, 2)
    r = await client.post("/v1/events", json={"events": [
        _event("s1", "view", items[0], session="sess-9", size="M"),
        _event("s2", "cart", items[1], session="sess-9", size="M")]})
    assert r.status_code == 200
    keys = KeyScheme(redis_prefix)
    assert raw_redis.ttl(keys.session("sess-9")) > 0
    r = await client.post("/v1/sessions/sess-9/identify", json={"user_id": "logged-in-1"})
    assert r.status_code == 200, r.text
    assert r.json()["carried"]["sizes"] == 2
    user = decode_live(raw_redis.get(keys.live("logged-in-1")))
    assert [c.item_id for c in user.cart] == [items[1]]
    assert {s.size for s in user.sizes} == {"M"} and user.sessions == ["sess-9"]
    assert decode_live(raw_redis.get(keys.session("sess-9"))).user_id == "logged-in-1"


async def test_erasure_leaves_nothing(client, raw_redis, redis_prefix, profiles, demo_bundle):
    user = next(iter(profiles))
    items = _popular_items(demo_bundle, 2)
    await client.post("/v1/events", json={"events": [
        _event("x1", "view", items[0], session="sess-e"),
        _event("x2", "purchase", items[1], user=user, session="sess-e2")]})
    await client.post("/v1/sessions/sess-e/identify", json={"user_id": user})
    await client.post("/v1/picks", json={"users": [user], "campaign": "weekly", "record": True})
    held = [k.decode() for k in raw_redis.scan_iter(match=f"{redis_prefix}:*")]
    assert {k for k in held if user in k or "sess-e" in k} >= {
        f"{redis_prefix}:v1:{{{user}}}:batch", f"{redis_prefix}:v1:{{{user}}}:live",
        f"{redis_prefix}:v1:{{{user}}}:sent", f"{redis_prefix}:v1:{{sess:sess-e}}:session"}

    r = await client.delete(f"/v1/users/{user}")
    assert r.status_code == 200 and r.json()["keys_deleted"] >= 4
    left = [k.decode() for k in raw_redis.scan_iter(match=f"{redis_prefix}:*")]
    assert not [k for k in left if user in k or "sess-e" in k], left
    assert raw_redis.zscore(KeyScheme(redis_prefix).erasures(), user) is not None
    after = await _recs(client, user)
    assert after["source"] == "popular" and "unknown customer" in after["notes"][0]


async def test_erasure_leaves_no_session_ever_linked(client, raw_redis, redis_prefix,
                                                     demo_bundle):
    """A customer keeps at most MAX_LINKED_SESSIONS linked sessions; one that falls off the
    list, by a login or by an event naming both ids, is deleted then, so none outlives the
    customer's erasure."""
    item = _popular_items(demo_bundle, 1)[0]
    sessions = [f"many-{n:02d}" for n in range(MAX_LINKED_SESSIONS + 3)]
    for n, session in enumerate(sessions[:-1]):
        await client.post("/v1/events", json={"events": [
            _event(f"m{n}", "view", item, session=session)]})
        r = await client.post(f"/v1/sessions/{session}/identify", json={"user_id": "many"})
        assert r.status_code == 200, r.text
    r = await client.post("/v1/events", json={"events": [
        _event("m-last", "view", item, user="many", session=sessions[-1])]})
    assert r.status_code == 200, r.text
    keys = KeyScheme(redis_prefix)
    held = [s for s in sessions if raw_redis.exists(keys.session(s))]
    linked = decode_live(raw_redis.get(keys.live("many"))).sessions
    assert len(linked) == MAX_LINKED_SESSIONS and set(held) <= set(linked)
    assert linked[0] == sessions[-1]  # the newest first; the oldest were deleted
    assert not raw_redis.exists(keys.session(sessions[0]))

    r = await client.delete("/v1/users/many")
    assert r.status_code == 200
    assert not [s for s in sessions if raw_redis.exists(keys.session(s))]


async def test_retrain_keeps_live_events(client, demo_bundle, redis_url, redis_prefix, profiles):
    user = next(u for u, p in profiles.items() if len(p.candidate_ids()) > 10)
    top = (await _recs(client, user, n=5))["items"][0]["item_id"]
    await client.post("/v1/events", json={"events": [_event("r1", "purchase", top, user=user)]})
    # a retrain rewrites every batch profile (here: the same ones again)
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    assert top not in [i["item_id"] for i in (await _recs(client, user, n=50))["items"]]


async def test_events_when_redis_is_down_are_503_and_say_resend(demo_bundle, dead_redis_url):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.1)
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        r = await c.post("/v1/events", json={"events": [_event("d1", "view", "i00001", user="u")]})
        assert r.status_code == 503 and "resend" in r.json()["detail"]
        r = await c.delete("/v1/users/u")
        assert r.status_code == 503


async def test_events_survive_redis_losing_its_scripts(client, raw_redis, redis_prefix):
    """A restarted Redis forgets loaded scripts; the store loads its compare-and-set again."""
    body = {"events": [_event("s-a", "view", "i00001", user="script-user")]}
    assert (await client.post("/v1/events", json=body)).status_code == 200
    raw_redis.script_flush()
    body = {"events": [_event("s-b", "view", "i00002", user="script-user")]}
    r = await client.post("/v1/events", json=body)
    assert r.status_code == 200 and r.json()["accepted"] == 1
    live = decode_live(raw_redis.get(KeyScheme(redis_prefix).live("script-user")))
    assert [v.item_id for v in live.viewed] == ["i00002", "i00001"]


class _ReadFailsOnce(RedisProfileStore):
    """A real Redis store whose next batch read fails, as when Redis stalls for a moment:
    the fold-in after a purchase cannot read the customer."""

    failures = 0

    async def get_users(self, user_ids):
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("redis did not answer")
        return await super().get_users(user_ids)


async def test_a_fold_in_that_failed_is_redone_when_the_batch_is_resent(
        demo_bundle, redis_url, redis_prefix):
    store = _ReadFailsOnce(redis_url, prefix=redis_prefix, timeout_s=1.0)
    ingest = EventIngestor(Recommender(Catalog(demo_bundle), store), user_ttl_s=3600,
                           session_ttl_s=3600)
    items = _popular_items(demo_bundle, 2)
    now = time.time()
    body = msgspec.json.encode({"events": [
        _event(f"f{k}", "purchase", item, user="fold-fail") for k, item in enumerate(items)]})
    try:
        store.failures = 1
        with pytest.raises(StoreUnavailable):  # the API answers 503: resend
            await ingest.ingest(parse_batch(body, now), now)
        live = (await store.get_user("fold-fail")).live
        assert len(live.purchased) == 2 and not live.candidates  # applied, not folded in
        result = await ingest.ingest(parse_batch(body, now + 1), now + 1)
        assert result.accepted == 0 and result.duplicates == 2 and result.folded == 1
        live = (await store.get_user("fold-fail")).live
        assert live.candidates and live.folded_at == max(p.ts for p in live.purchased)
        # an older fold-in never overwrites a newer one
        newer = msgspec.structs.replace(live, folded_at=live.folded_at + 60,
                                        candidates=["kept"], scores=[1.0])
        await store.update_live({store.keys.live("fold-fail"): lambda _: newer},
                                {store.keys.live("fold-fail"): 3600})
        await ingest.refold(["fold-fail"], now + 2)
        assert (await store.get_user("fold-fail")).live.candidates == ["kept"]
    finally:
        await store.close()


async def test_a_return_is_folded_in_as_not_for_me(demo_bundle, redis_url, redis_prefix):
    """Training gives a returned purchase no weight; live, a return takes the item out of the
    folded-in history and out of the size evidence."""
    from service.sizes import _live_signals

    store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0)
    ingest = EventIngestor(Recommender(Catalog(demo_bundle), store), user_ttl_s=3600,
                           session_ttl_s=3600)
    kept, back = _popular_items(demo_bundle, 2)
    now = time.time()
    try:
        bought = msgspec.json.encode({"events": [
            _event("r-k", "purchase", kept, user="returner", size="M"),
            _event("r-b", "purchase", back, user="returner", size="L")]})
        await ingest.ingest(parse_batch(bought, now), now)
        both = (await store.get_user("returner")).live.candidates
        returned = msgspec.json.encode({"events": [
            _event("r-r", "return", back, user="returner")]})
        result = await ingest.ingest(parse_batch(returned, now + 1), now + 1)
        assert result.folded == 1
        live = (await store.get_user("returner")).live
        only_kept = await asyncio.to_thread(
            ingest.foldin().candidates, [[demo_bundle.items.index(kept)]], 100)
        assert live.candidates != both
        assert live.candidates == [demo_bundle.items.id(i) for i in only_kept[0][0]]
        assert [(s.item_id, s.size) for s in _live_signals(live, 0.0)] == [(kept, "M")]
    finally:
        await store.close()


async def test_an_event_naming_customer_and_session_makes_the_session_theirs(
        client, raw_redis, redis_prefix, demo_bundle):
    item = _popular_items(demo_bundle, 1)[0]
    r = await client.post("/v1/events", json={"events": [
        _event("both-1", "purchase", item, user="both-u", session="both-s", size="M")]})
    assert r.status_code == 200, r.text
    keys = KeyScheme(redis_prefix)
    session = decode_live(raw_redis.get(keys.session("both-s")))
    assert session.user_id == "both-u" and raw_redis.ttl(keys.session("both-s")) > 0
    assert decode_live(raw_redis.get(keys.live("both-u"))).sessions == ["both-s"]
    r = await client.delete("/v1/users/both-u")
    assert r.status_code == 200 and not raw_redis.exists(keys.session("both-s"))


async def test_an_event_market_the_bundle_does_not_sell_in_leaves_the_customers_own(
        client, profiles, demo_bundle):
    user = next(u for u, p in profiles.items() if p.market == "GB")
    item = _popular_items(demo_bundle, 1)[0]
    await client.post("/v1/events", json={"events": [
        _event("mk1", "view", item, user=user, market="ZZ")]})
    assert (await _recs(client, user))["market"] == "GB"
    await client.post("/v1/events", json={"events": [
        _event("mk2", "view", item, user=user, market="DE")]})
    assert (await _recs(client, user))["market"] == "DE"  # shopping in another market now
    stranger = await client.post("/v1/events", json={"events": [
        _event("mk3", "view", item, user="market-only", market="ZZ")]})
    assert stranger.status_code == 200
    answer = await _recs(client, "market-only")
    assert answer["source"] == "popular" and answer["market"] is None
