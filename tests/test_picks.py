"""Batch picks: streamed lines, exclusions, no repeats across recorded runs, caps, consent."""

import json
import os
import subprocess
import sys
import time

import msgspec
import pytest
import redis
from litestar.testing import AsyncTestClient

from artifacts.catalog import Catalog
from artifacts.profiles import ProfileRecord, SentLog, SentMail
from service.app import create_app
from service.picks import DAY, Cap, PickEngine, PicksConfig
from service.recommender import Recommender
from service.settings import Settings
from service.store import RedisProfileStore
from tests.conftest import ROOT
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


async def test_every_cap_that_applies_is_enforced(make_client, profiles, redis_url,
                                                  redis_prefix):
    """Default 2 mails per 7 days, the market 1 per 3 days: a customer of that market mailed a
    day ago is capped by the market's cap, whichever cap allows more mails per day."""
    user, profile = next((u, p) for u, p in profiles.items()
                         if p.market and "lapsing" not in p.segments)
    store = RedisProfileStore(redis_url, prefix=redis_prefix)
    mail = SentMail(time.time() - DAY, ["i-x"])
    await store.update_sent({user: lambda _: SentLog(campaigns={"weekly": [mail]})},
                            ttl_s=30 * DAY)
    await store.close()
    config = {"default_cap": {"max_mails": 2, "window_days": 7},
              "markets": {profile.market: {"max_mails": 1, "window_days": 3}}}
    async with await make_client(config) as c:
        [line] = await _picks(c, users=[user], campaign="weekly")
        [other] = await _picks(c, users=[user], campaign="other")
    assert line["capped"] and line["items"] == [], line
    assert "in the last 3 days, at most 1 allowed" in line["reason"]
    assert not other["capped"] and other["items"]


async def test_a_customer_listed_twice_is_picked_and_recorded_once(make_client, profiles):
    user = next(iter(profiles))
    async with await make_client({"default_cap": {"max_mails": 1, "window_days": 7}}) as c:
        lines = await _picks(c, users=[user, user], campaign="weekly", record=True)
        [again] = await _picks(c, users=[user], campaign="weekly")
    assert [line["user_id"] for line in lines] == [user, user]
    assert len(lines[0]["items"]) == 6 and not lines[0]["capped"]
    assert lines[1]["items"] == [] and "more than once" in lines[1]["reason"]
    assert again["capped"]


async def test_an_erased_customer_is_not_picked_and_no_sent_log_comes_back(
        make_client, profiles, raw_redis, redis_prefix):
    erased, kept = list(profiles)[:2]
    async with await make_client() as c:
        r = await c.delete(f"/v1/users/{erased}")
        assert r.status_code == 200, r.text
        lines = await _picks(c, users=[erased, kept, "never-seen"], campaign="weekly",
                             record=True)
    assert lines[0]["items"] == [] and lines[0]["source"] == "none"
    assert "erased" in lines[0]["reason"] and not lines[0]["capped"]
    assert len(lines[1]["items"]) == 6 and len(lines[2]["items"]) == 6
    held = [k.decode() for k in raw_redis.scan_iter(match=f"{redis_prefix}:*")]
    assert not [k for k in held if erased in k], held
    assert [k for k in held if kept in k and k.endswith(":sent")]


async def test_a_cap_of_more_mails_than_twenty_is_kept_to(make_client, profiles):
    user = next(iter(profiles))
    async with await make_client({"default_cap": {"max_mails": 25, "window_days": 7}}) as c:
        for _ in range(25):
            [line] = await _picks(c, users=[user], n=1, campaign="weekly", record=True)
            assert not line["capped"]
        [line] = await _picks(c, users=[user], n=1, campaign="weekly")
    assert line["capped"] and "25 mail(s)" in line["reason"]


def test_a_cap_longer_than_the_sent_log_is_kept_is_refused():
    with pytest.raises(msgspec.ValidationError, match="longer than the sent log is kept"):
        msgspec.json.decode(b'{"markets": {"DE": {"max_mails": 1, "window_days": 180}}}',
                            type=PicksConfig)
    config = msgspec.json.decode(b'{"sent_ttl_days": 200, "markets": {"DE": {"max_mails": 1, '
                                 b'"window_days": 180}}}', type=PicksConfig)
    assert config.markets["DE"].window_days == 180


def _run_cli(bundle_root, users_path, out_path, redis_url, redis_prefix):
    return subprocess.run(
        [sys.executable, "-m", "service", "picks", "--users", str(users_path), "--out",
         str(out_path), "--bundle", str(bundle_root), "--redis-url", redis_url, "--campaign",
         "cli", "--record", "--workers", "1", "--chunk", "2", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "RECO_REDIS_PREFIX": redis_prefix})


def test_cli_a_users_file_that_is_not_utf8_stops_before_anything_is_recorded(
        demo_bundle_root, profiles, redis_url, redis_prefix, tmp_path):
    users = sorted(profiles)[:5]
    path, out = tmp_path / "users.txt", tmp_path / "picks.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(users).encode() + b"\n\xff\n")
    run = _run_cli(demo_bundle_root, path, out, redis_url, redis_prefix)
    assert run.returncode == 2 and "line 6: not UTF-8" in run.stderr, run.stderr
    client = redis.Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match=f"{redis_prefix}:*:sent"))
        assert not out.exists()
        # the byte-order mark is not part of the first id
        path.write_bytes(b"\xef\xbb\xbf" + "\n".join(users).encode() + b"\n")
        run = _run_cli(demo_bundle_root, path, out, redis_url, redis_prefix)
        assert run.returncode == 0, run.stderr
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [line["user_id"] for line in lines] == users
        assert all(line["items"] for line in lines)
        assert len(list(client.scan_iter(match=f"{redis_prefix}:*:sent"))) == 5
    finally:
        client.close()


class _RecordsLate(RedisProfileStore):
    """A real Redis store whose sent-log update waits until ``before`` has run: another run
    records between this run's read and its write."""

    before = None

    async def update_sent(self, mutations, ttl_s):
        if self.before is not None:
            await self.before()
        await super().update_sent(mutations, ttl_s)


async def test_two_runs_recording_at_once_mail_each_customer_once(demo_bundle, profiles,
                                                                 redis_url, redis_prefix):
    """Run A reads the sent logs, run B picks and records the same customers, then A records:
    one mail per 7 days allows one of them; A's picks come back empty and capped, not
    recorded, and each log holds B's mail only."""
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    users = list(profiles)[:50]
    config = PicksConfig(default_cap=Cap(max_mails=1, window_days=7))
    late = _RecordsLate(redis_url, prefix=redis_prefix, timeout_s=1.0)
    other = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0)
    a = PickEngine(Recommender(Catalog(demo_bundle), late), config)
    b = PickEngine(Recommender(Catalog(demo_bundle), other), config)
    now = time.time()
    second: list = []

    async def run_b():
        late.before = None
        second.extend(await b.pick(users, n=6, market=None, campaign="weekly", record=True,
                                   now=now))
    late.before = run_b
    try:
        first = await a.pick(users, n=6, market=None, campaign="weekly", record=True, now=now)
        assert all(p.items and not p.capped for p in second)
        assert all(not p.items and p.capped and "another run" in p.reason for p in first)
        for pick in second:
            log = (await other.get_user(pick.user_id)).sent
            assert [m.items for m in log.campaigns["weekly"]] == [
                [i.item_id for i in pick.items]]
    finally:
        await late.close()
        await other.close()
