"""The HTTP API, through Litestar's test client against an app built with test arguments."""

import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from service.store import RedisProfileStore
from training.redis_push import push_profiles


@pytest.fixture
async def redis_client(demo_bundle, redis_url, redis_prefix):
    """The app on real Redis, profiles loaded the way the trainer loads them."""
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0)
    app = create_app(Settings(), bundle=demo_bundle, store=store)
    async with AsyncTestClient(app) as c:
        yield c


def _known_user(profiles):
    return next(u for u, p in profiles.items() if len(p.purchased) >= 3 and p.market)


async def test_for_you_excludes_purchases_and_carries_sources(redis_client, profiles,
                                                              demo_bundle):
    from artifacts import ranking
    from artifacts.catalog import Catalog

    user = _known_user(profiles)
    r = await redis_client.get(f"/v1/users/{user}/recommendations", params={"n": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "personal" and body["degraded"] is False
    assert body["market"] == profiles[user].market
    assert len(body["items"]) == 20
    ids = [i["item_id"] for i in body["items"]]
    assert len(set(ids)) == len(ids)
    catalog = Catalog(demo_bundle)
    not_again = {catalog.ids[i] for i in ranking.not_again(catalog, profiles[user])}
    assert not_again, "the customer bought items that are not repurchasable"
    assert not set(ids) & not_again
    for item in body["items"]:
        assert set(item) >= {"item_id", "score", "source"}
    assert ids[:5] == [c for c in profiles[user].candidate_ids() if c not in not_again][:5]


async def test_market_filter_only_returns_items_sold_there(client, demo_bundle, profiles):
    import numpy as np

    from artifacts.catalog import Catalog

    catalog = Catalog(demo_bundle)
    market = catalog.markets[0]
    user = _known_user(profiles)
    r = await client.get(f"/v1/users/{user}/recommendations", params={"n": 50, "market": market})
    assert r.status_code == 200
    available = catalog.available(catalog.market_row(market))
    assert all(available[demo_bundle.items.index(i["item_id"])] for i in r.json()["items"])
    restricted = int((np.frombuffer(available, np.uint8) == 0).sum())
    assert restricted > 0, "the demo shop should have items not sold in some market"


async def test_unknown_user_gets_popular_in_market(client, demo_bundle):
    market = demo_bundle.manifest.markets[1]
    r = await client.get("/v1/users/stranger-42/recommendations", params={"market": market})
    assert r.status_code == 200
    body = r.json()
    assert body["source"] == "popular_market" and body["market"] == market
    assert len(body["items"]) == 12
    assert {i["source"] for i in body["items"]} == {"popular_market"}
    assert "unknown customer" in body["notes"][0]


async def test_similar_items(client, demo_bundle):
    item = demo_bundle.items.id(int(demo_bundle["neighbours_idx"][:, 0].argmax()))
    idx = demo_bundle.items.index(item)
    r = await client.get(f"/v1/items/{item}/similar", params={"n": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["item_id"] == item and len(body["items"]) == 5
    expected = [demo_bundle.items.id(i) for i in demo_bundle["neighbours_idx"][idx] if i >= 0][:5]
    assert [i["item_id"] for i in body["items"]][:2] == expected[:2]
    assert item not in [i["item_id"] for i in body["items"]]


async def test_similar_personalised_leaves_out_purchases(client, profiles, demo_bundle):
    user = _known_user(profiles)
    item = profiles[user].purchased[0]
    r = await client.get(f"/v1/items/{item}/similar", params={"n": 30, "user_id": user})
    assert r.status_code == 200
    assert not {i["item_id"] for i in r.json()["items"]} & set(profiles[user].purchased)


async def test_unknown_item_is_404_with_message(client):
    r = await client.get("/v1/items/no-such-item/similar")
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "not_found" and "no-such-item" in body["detail"]


@pytest.mark.parametrize("path,params,field", [
    ("/v1/users/u1/recommendations", {"n": 0}, "n"),
    ("/v1/users/u1/recommendations", {"n": 101}, "n"),
    ("/v1/users/u1/recommendations", {"n": "many"}, "n"),
    ("/v1/users/u1/recommendations", {"market": "a b"}, "market"),
    ("/v1/users/" + "x" * 200 + "/recommendations", {}, "user_id"),
    ("/v1/users/bad%7Bid%7D/recommendations", {}, "user_id"),
    ("/v1/items/i1/similar", {"n": -3}, "n"),
])
async def test_bad_parameters_are_400_naming_the_field(client, path, params, field):
    r = await client.get(path, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "invalid_parameter"
    assert field in body["detail"]


async def test_unknown_market_is_400_listing_known(client, demo_bundle):
    r = await client.get("/v1/users/u1/recommendations", params={"market": "ZZ"})
    assert r.status_code == 400
    assert "ZZ" in r.json()["detail"] and demo_bundle.manifest.markets[0] in r.json()["detail"]


async def test_unknown_route_is_json_404(client):
    r = await client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_redis_unreachable_degrades_never_500(demo_bundle, dead_redis_url, profiles):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.1, retry_after_s=5)
    app = create_app(Settings(), bundle=demo_bundle, store=store)
    user = _known_user(profiles)
    async with AsyncTestClient(app) as c:
        for _ in range(3):
            r = await c.get(f"/v1/users/{user}/recommendations", params={"n": 8})
            assert r.status_code == 200
            body = r.json()
            assert body["degraded"] is True and len(body["items"]) == 8
            assert body["source"] in {"popular", "popular_market"}
        item = profiles[user].purchased[0]
        r = await c.get(f"/v1/items/{item}/similar", params={"user_id": user})
        assert r.status_code == 200 and r.json()["degraded"] is True
        ready = await c.get("/ready")
        assert ready.status_code == 503 and ready.json()["store_reachable"] is False


async def test_health_ready_and_openapi(redis_client, demo_bundle):
    assert (await redis_client.get("/health")).json() == {"status": "ok"}
    ready = await redis_client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["bundle_version"] == demo_bundle.version
    assert ready.json()["store"] == "redis"
    schema = (await redis_client.get("/schema/openapi.json")).json()
    assert "/v1/users/{user_id}/recommendations" in schema["paths"]
    params = schema["paths"]["/v1/users/{user_id}/recommendations"]["get"]["parameters"]
    n = next(p for p in params if p["name"] == "n")
    assert n["schema"]["maximum"] == 100


async def test_app_loads_bundle_and_embedded_store_from_settings(demo_bundle_root, caplog):
    app = create_app(Settings(bundle_dir=str(demo_bundle_root)))
    with caplog.at_level("WARNING"):
        async with AsyncTestClient(app) as c:
            r = await c.get("/ready")
            assert r.status_code == 200 and r.json()["store"] == "memory"
    assert "embedded in-process profile store" in caplog.text


@pytest.mark.parametrize("path,body,detail", [
    ("/v1/sessions/s1/identify", None, "a JSON request body is required"),
    ("/v1/picks", b"{", "request body is not valid JSON"),
])
async def test_bad_bodies_are_400_saying_so(client, path, body, detail):
    r = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_body" and detail in r.json()["detail"]


POSTS = ["/v1/events", "/v1/picks", "/v1/sessions/s1/identify"]
MALFORMED = {
    "empty": (b"", "a JSON request body is required", None),
    "not JSON": (b"{'user_id': 'u1'}", "request body is not valid JSON", None),
    "truncated": (b'{"events": [', "request body is not valid JSON", None),
    "not UTF-8": (b'{"events": [{"event_id": "e\xff"}]}', "request body is not valid JSON", None),
    "an array": (b'["u1"]', "body: Expected `object`, got `array`", "body"),
    "a string": (b'"u1"', "body: Expected `object`, got `str`", "body"),
    "null": (b"null", "body: Expected `object`, got `null`", "body"),
    "an unknown top-level field": (b'{"surprise": 1}',
                                   "surprise: Object contains unknown field `surprise`",
                                   "surprise"),
}


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("body,detail,key", MALFORMED.values(), ids=MALFORMED)
async def test_every_post_answers_a_malformed_body_alike(client, path, body, detail, key):
    """Missing, not JSON, or not a JSON object of the documented shape: 400 ``invalid_body``
    on every POST, whether Litestar or the handler decodes the body, naming the field at fault
    (``body`` for the body itself)."""
    r = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["error"] == "invalid_body", answer
    assert detail in answer["detail"], answer
    assert [f["key"] for f in answer["fields"]] == ([key] if key else [])
    assert all(f["source"] == "body" for f in answer["fields"])
    if path == "/v1/events":
        assert "nothing was applied" in answer["detail"]


@pytest.mark.parametrize("path,field", [("/v1/events", "events"), ("/v1/picks", "users"),
                                        ("/v1/sessions/s1/identify", "user_id")])
async def test_a_body_nested_too_deeply_is_400(client, path, field):
    """A few KB of brackets go past the decoder's recursion limit: the client's error."""
    body = b'{"%s": %s%s}' % (field.encode(), b"[" * 5000, b"]" * 5000)
    r = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_body" and "nested too deeply" in r.json()["detail"]


@pytest.mark.parametrize("path,body,key", [
    ("/v1/picks", {"users": "u1"}, "users"),
    ("/v1/picks", {"users": ["u1"], "n": "six"}, "n"),
    ("/v1/sessions/s1/identify", {"user_id": 5}, "user_id"),
])
async def test_a_bad_value_in_a_body_is_an_invalid_parameter_naming_it(client, path, body, key):
    r = await client.post(path, json=body)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["error"] == "invalid_parameter"
    assert [f["key"] for f in answer["fields"]] == [key] and f"{key}: " in answer["detail"]


async def test_a_missing_parameter_is_named_in_fields(client):
    r = await client.get("/v1/users/c00001/size")
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["error"] == "invalid_parameter"
    assert answer["fields"] == [{"key": "item_id", "source": "query",
                                 "message": "missing required query parameter"}]
    assert "item_id" in answer["detail"] and "c00001" not in answer["detail"]


@pytest.mark.parametrize("method,path", [
    ("DELETE", "/v1/users//recommendations"), ("GET", "/v1/users//homepage"),
    ("GET", "/v1/items//similar"), ("POST", "/v1/sessions//identify")])
async def test_a_path_with_an_empty_segment_is_404_and_touches_nothing(client, method, path):
    """Litestar's router collapses ``//``: without the guard the DELETE above erased a
    customer called "recommendations"."""
    r = await client.request(method, path, json={"user_id": "u1"} if method == "POST" else None)
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found" and "empty segment" in r.json()["detail"]
    erased = await client.app.state.recommender.store.erased_users()
    assert "recommendations" not in erased


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/v1/users/a%0A/recommendations", None),
    ("DELETE", "/v1/users/a%0A", None),
    ("POST", "/v1/sessions/s1/identify", {"user_id": "u1\n"}),
    ("POST", "/v1/events", {"events": [{"event_id": "e1\n", "type": "view", "item_id": "i1",
                                        "user_id": "u1"}]}),
])
async def test_an_id_with_a_trailing_newline_is_refused(client, method, path, body):
    """Python's ``$`` matches before a final newline: the id rule must not let "a\\n" in."""
    r = await client.request(method, path, json=body)
    assert r.status_code == 400, r.text
    # the rule in words, not its regex
    assert "Expected an id: 1-128 letters, digits" in r.text and "regex" not in r.text


def test_the_id_rule_takes_the_whole_value():
    from artifacts.ids import is_valid_id
    assert is_valid_id("c00001") and is_valid_id("a" * 128)
    assert not any(map(is_valid_id, ["a\n", "a\nb", "a" * 129, "", " a", "a b", "{a}"]))


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_health_and_readiness_answer_head_too(client, path):
    """Load balancers and uptime checks often probe with HEAD: the status, no body."""
    get, head = await client.get(path), await client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == "application/json"


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
async def test_a_body_not_declared_json_is_415(client, path, content_type):
    """A text/plain or form POST needs no CORS preflight: a page on another site could send
    one from a shopper's browser. Only declared JSON is read."""
    headers = {"content-type": content_type} if content_type else {}
    r = await client.post(path, content=b'{"users": ["u1"]}', headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["error"] == "unsupported_media_type"
    assert "content-type: application/json" in r.json()["detail"]


async def test_json_with_a_charset_is_json(client):
    r = await client.post("/v1/sessions/s1/identify", content=b'{"user_id": "u1"}',
                          headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text
