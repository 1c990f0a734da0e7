"""Batch picks: streamed lines, exclusions, no repeats across recorded runs, caps, consent."""

import json

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from artifacts.profiles import ProfileRecord
from service.app import create_app
from service.settings import Settings
from service.store import RedisProfileStore
from training.redis_push import push_profiles


def _records(demo_bundle, **changes):
    """The bundle's profiles, with per-user field overrides: {user_id: {field: value}}."""
    for r in demo_bundle.profile_records():
        extra = changes.get(r.user_id)
        yield ProfileRecord(r.user_id, msgspec.structs.replace(r.profile, **extra)) if extra else r


@pytest.fixture
def make_client(demo_bundle, redis_url, redis_prefix, tmp_path):
    async def make(config: dict | None = None, **changes):
        push_profiles(_records(demo_bundle, **changes), redis_url, prefix=redis_prefix,
                      progress=False)
        settings = Settings()
        if config is not None:
            path = tmp_path / "picks.json"
            path.write_text(json.dumps(config))
            settings = Settings(picks_config=str(path))
        store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0)
        return AsyncTestClient(create_app(settings, bundle=demo_bundle, store=store))
    return make


async def _picks(client, **body):
    r = await client.post("/v1/picks", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in r.text.splitlines()]


async def test_one_line_per_customer_in_order_excluding_purchases(make_client, profiles):
    users = list(profiles)[:300] + ["never-seen"]
    async with await make_client() as client:
        lines = await _picks(client, users=users, n=6, campaign="weekly")
    assert [line["user_id"] for line in lines] == users
    for line in lines[:-1]:
        assert len(line["items"]) == 6 and not line["capped"]
        assert not {i["item_id"] for i in line["items"]} & set(profiles[line["user_id"]].purchased)
    assert lines[-1]["source"] == "popular"


async def test_recorded_runs_never_repeat_items(make_client, profiles):
    users = list(profiles)[:200]
    async with await make_client(config={"default_cap": {"max_mails": 5, "window_days": 7}}) as c:
        first = await _picks(c, users=users, n=6, campaign="weekly", record=True)
        second = await _picks(c, users=users, n=6, campaign="weekly", record=True)
        other = await _picks(c, users=users, n=6, campaign="flash-sale")
    for a, b, o in zip(first, second, other):
        assert len(b["items"]) == 6
        assert not {i["item_id"] for i in a["items"]} & {i["item_id"] for i in b["items"]}
        assert [i["item_id"] for i in o["items"]] == [i["item_id"] for i in a["items"]], \
            "another campaign family does not see the weekly mails"


async def test_frequency_caps_per_market_and_segment(make_client, profiles):
    by_market = {}
    for user, p in profiles.items():
        if "lapsing" not in p.segments:  # the trainer's own segments would cap them too
            by_market.setdefault(p.market, []).append(user)
    capped_market, free_market = sorted(m for m in by_market if m)[:2]
    lapsing = by_market[free_market][0]
    config = {"default_cap": {"max_mails": 2, "window_days": 7},
              "markets": {capped_market: {"max_mails": 1, "window_days": 7}},
              "segments": {"lapsing": {"max_mails": 1, "window_days": 14}}}
    users = by_market[capped_market][:5] + by_market[free_market][:5]
    async with await make_client(config, **{lapsing: {"segments": ["lapsing"]}}) as c:
        await _picks(c, users=users, campaign="weekly", record=True)
        second = {line["user_id"]: line for line in
                  await _picks(c, users=users, campaign="weekly", record=True)}
        third = {line["user_id"]: line for line in
                 await _picks(c, users=users, campaign="weekly")}
    for user in by_market[capped_market][:5]:
        assert second[user]["capped"] and second[user]["items"] == []
        assert "at most 1 allowed" in second[user]["reason"]
    assert second[lapsing]["capped"]
    for user in by_market[free_market][1:5]:
        assert not second[user]["capped"] and third[user]["capped"]


async def test_consent_and_sensitive_items(make_client, profiles, demo_bundle):
    sensitive = {demo_bundle.items.id(i) for i in range(len(demo_bundle.items))
                 if demo_bundle["item_sensitive"][i]}
    assert sensitive, "the demo shop declares sensitive items"
    users = list(profiles)[:400]
    opted_out = users[0]
    consenting = users[1:200]
    changes = {opted_out: {"consent_personalisation": False}}
    changes.update({u: {"consent_sensitive": True} for u in consenting})
    changes.update({u: {"consent_sensitive": False} for u in users[200:]})
    async with await make_client(**changes) as c:
        lines = {line["user_id"]: line for line in await _picks(c, users=users, n=12)}
    assert lines[opted_out]["source"] in {"popular", "popular_market"}
    assert lines[opted_out]["reason"] == "no consent to personalisation"
    for user in users[200:]:
        assert not {i["item_id"] for i in lines[user]["items"]} & sensitive
    shown_with_consent = set().union(*({i["item_id"] for i in lines[u]["items"]} for u in consenting))
    assert shown_with_consent & sensitive, "with consent, sensitive items are not filtered"


@pytest.mark.parametrize("body,field", [
    ({"users": []}, "users"),
    ({"users": ["ok"], "n": 0}, "n"),
    ({"users": ["bad id"]}, "users"),
    ({"users": ["ok"] * 1001}, "users"),
    ({"users": ["ok"], "surprise": 1}, "surprise"),
])
async def test_bad_pick_requests_are_400(make_client, body, field):
    async with await make_client() as c:
        r = await c.post("/v1/picks", json=body)
    assert r.status_code == 400 and field in r.text


async def test_unknown_market_is_400_before_streaming(make_client):
    async with await make_client() as c:
        r = await c.post("/v1/picks", json={"users": ["a"], "market": "ZZ"})
    assert r.status_code == 400 and "unknown market" in r.json()["detail"]


async def test_store_unreachable_is_503_before_streaming(demo_bundle, dead_redis_url):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.1)
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        r = await c.post("/v1/picks", json={"users": ["a", "b"]})
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "unavailable" and "retry" in r.json()["detail"]
