"""The homepage endpoints through Litestar's test client: shape, audiences, live events on real
Redis, degradation, bad input, and the demo shop's customers seeing different pages."""

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from artifacts.homepage import SECTIONS
from artifacts.profiles import ProfileRecord
from service.app import create_app
from service.settings import Settings
from service.store import MemoryProfileStore, RedisProfileStore
from training.redis_push import push_profiles


def _records(demo_bundle, **changes):
    for r in demo_bundle.profile_records():
        extra = changes.get(r.user_id)
        yield ProfileRecord(r.user_id, msgspec.structs.replace(r.profile, **extra)) if extra else r


@pytest.fixture
async def redis_client(demo_bundle, redis_url, redis_prefix):
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0)
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        yield c


async def _home(client, user=None, **params):
    path = f"/v1/users/{user}/homepage" if user else "/v1/homepage"
    r = await client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _ids(body, key=None):
    return [i["item_id"] for s in body["sections"] if key in (None, s["key"]) for i in s["items"]]


def _customer(profiles, segment):
    return next(u for u, p in profiles.items() if segment in p.segments and p.market
                and len(p.purchased) >= 3 and p.consent_personalisation is not False)


async def test_homepage_shape(client, profiles):
    user = _customer(profiles, "discount_hunter")
    body = await _home(client, user, n=5)
    assert body["audience"] == "personal" and body["personalised"] is True
    assert body["source"] == "personal"
    assert body["degraded"] is False and body["market"] == profiles[user].market
    assert body["layout"] == "discount_hunter" and "discount_hunter" in body["segments"]
    assert body["sections"][0]["key"] == "on_sale"
    for section in body["sections"]:
        assert set(section) >= {"key", "title", "reason", "items"}
        assert 1 <= len(section["items"]) <= 5
        for item in section["items"]:
            assert set(item) == {"item_id", "score", "source", "reason"}
    ids = _ids(body)
    assert len(ids) == len(set(ids))


async def test_demo_shop_customers_see_visibly_different_homepages(client, profiles):
    """A discount hunter, a trend seeker, a new and a lapsing customer of the demo shop (as the
    generator made them and the trainer found them)."""
    from training.data.synthetic import generate_shop_with_truth

    _, truth = generate_shop_with_truth(seed=7, n_customers=600, n_items=400, days=240)
    pages = {}
    for segment in ("discount_hunter", "trend_seeker", "new", "lapsing"):
        user = next(u for u, p in profiles.items() if truth.behaviour[u] == segment
                    and segment in p.segments and p.consent_personalisation is not False
                    and not {"lapsing", "new"} & set(p.segments) - {segment})
        pages[segment] = await _home(client, user, n=4)
    first = {s: p["sections"][0]["key"] for s, p in pages.items()}
    assert first == {"discount_hunter": "on_sale", "trend_seeker": "new_arrivals",
                     "new": "trending", "lapsing": "for_you"}, first
    assert {p["layout"] for p in pages.values()} == set(pages)
    assert "on_sale" not in [s["key"] for s in pages["trend_seeker"]["sections"]]
    titles = {s: p["sections"][0]["title"] for s, p in pages.items()}
    assert titles["lapsing"].startswith("Welcome back") and titles["new"].startswith("Welcome!")
    tops = [tuple(_ids(p)[:8]) for p in pages.values()]
    assert len(set(tops)) == 4


async def test_unknown_and_anonymous_visitors_get_the_market_homepage(client, demo_bundle):
    market = demo_bundle.manifest.markets[1]
    unknown = await _home(client, "stranger-1", market=market)
    anonymous = await _home(client, market=market)
    for body, audience in ((unknown, "unknown_customer"), (anonymous, "anonymous")):
        assert body["audience"] == audience and body["personalised"] is False
        assert body["source"] == "popular_market"
        assert body["layout"] == "non_personal" and body["market"] == market
        assert [s["key"] for s in body["sections"]] == ["trending", "new_arrivals", "on_sale"]
        assert body["notes"][0].endswith("market homepage") and body["segments"] == []
    assert _ids(unknown) == _ids(anonymous)


async def test_opted_out_customer_gets_the_market_homepage(demo_bundle, profiles):
    user = _customer(profiles, "discount_hunter")
    store = MemoryProfileStore(_records(demo_bundle,
                                        **{user: {"consent_personalisation": False}}))
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        body = await _home(c, user)
    assert body["audience"] == "opted_out" and body["personalised"] is False
    assert body["segments"] == [] and body["layout"] == "non_personal"
    assert "opted out" in body["notes"][0]


async def test_live_views_and_purchases_shape_the_page(redis_client, profiles, demo_bundle):
    user = next(u for u, p in profiles.items() if len(p.segments) == 1 and p.market
                and p.consent_personalisation is not False)  # default layout: viewed first
    before = await _home(redis_client, user, n=6)
    assert before["layout"] == "default"
    assert "recently_viewed" not in [s["key"] for s in before["sections"]]
    viewed = [i for i in _ids(before, "trending")][:2]
    bought = _ids(before)[0]
    events = [{"event_id": f"v{k}", "type": "view", "item_id": item, "user_id": user}
              for k, item in enumerate(viewed)]
    events.append({"event_id": "p1", "type": "purchase", "item_id": bought, "user_id": user})
    r = await redis_client.post("/v1/events", json={"events": events})
    assert r.status_code == 200, r.text
    after = await _home(redis_client, user, n=6)
    assert after["sections"][0]["key"] == "recently_viewed"
    assert _ids(after, "recently_viewed") == [i for i in viewed[::-1] if i != bought]
    assert bought not in _ids(after), "just bought: never on the page"


async def test_customer_known_only_from_live_events_is_new(redis_client, demo_bundle):
    items = [demo_bundle.items.id(i) for i in demo_bundle["popular_idx"][0][:2]]
    r = await redis_client.post("/v1/events", json={"events": [
        {"event_id": "n1", "type": "purchase", "item_id": items[0], "user_id": "fresh-face"},
        {"event_id": "n2", "type": "view", "item_id": items[1], "user_id": "fresh-face"}]})
    assert r.status_code == 200
    body = await _home(redis_client, "fresh-face")
    assert body["audience"] == "personal" and body["layout"] == "new"
    assert items[0] not in _ids(body)


@pytest.mark.parametrize("event", [
    {"type": "view"},  # known only from a view: no candidates at all
    {"type": "view", "market": "DE"},
    {"type": "purchase", "item_id": "not-in-the-bundle"},
    {"type": "purchase", "ts": "2000-01-01T00:00:00Z"},  # before training: nothing to fold in
])
async def test_customer_unseen_at_training_without_candidates_gets_every_section(
        redis_client, demo_bundle, event):
    item = demo_bundle.items.id(int(demo_bundle["popular_idx"][0][0]))
    r = await redis_client.post("/v1/events", json={"events": [
        {"event_id": "u1", "item_id": item, "user_id": "no-candidates", **event}]})
    assert r.status_code == 200, r.text
    body = await _home(redis_client, "no-candidates")
    assert body["audience"] == "personal" and body["layout"] == "new"
    for sections in ("on_sale", "new_arrivals", ",".join(SECTIONS)):
        await _home(redis_client, "no-candidates", sections=sections)


async def test_redis_down_degrades_to_the_market_homepage(demo_bundle, dead_redis_url, profiles):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.1, retry_after_s=5)
    user = _customer(profiles, "new")
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        for _ in range(2):
            body = await _home(c, user, market="DE")
            assert body["degraded"] is True and body["audience"] == "profile_unavailable"
            assert body["source"] == "popular_market"
            assert body["sections"] and body["layout"] == "non_personal"


@pytest.mark.parametrize("path,params,field", [
    ("/v1/users/u1/homepage", {"n": 0}, "n"),
    ("/v1/users/u1/homepage", {"n": 51}, "n"),
    ("/v1/users/u1/homepage", {"n": "lots"}, "n"),
    ("/v1/users/u1/homepage", {"market": "a b"}, "market"),
    ("/v1/users/bad%7Bid%7D/homepage", {}, "user_id"),
    ("/v1/homepage", {"sections": "x" * 400}, "sections"),
])
async def test_bad_parameters_are_400_naming_the_field(client, path, params, field):
    r = await client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_parameter" and field in r.json()["detail"]


@pytest.mark.parametrize("sections", ["for_you,horoscope", " , "])
async def test_unknown_sections_are_400_listing_the_known(client, sections):
    r = await client.get("/v1/users/u1/homepage", params={"sections": sections})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["fields"][0]["key"] == "sections"
    assert all(key in body["detail"] for key in SECTIONS)
    if "horoscope" in sections:
        assert "'horoscope'" in body["detail"]


async def test_unknown_market_is_400(client, demo_bundle):
    r = await client.get("/v1/homepage", params={"market": "ZZ"})
    assert r.status_code == 400 and demo_bundle.manifest.markets[0] in r.json()["detail"]


async def test_sections_parameter_and_openapi(client, profiles):
    user = _customer(profiles, "trend_seeker")
    body = await _home(client, user, sections="trending,for_you")
    assert [s["key"] for s in body["sections"]] == ["for_you", "trending"]  # layout order
    schema = (await client.get("/schema/openapi.json")).json()
    assert {"/v1/users/{user_id}/homepage", "/v1/homepage"} <= set(schema["paths"])
