"""The short path of the hot page views (service/fast_routes.py) answers exactly as Litestar.

Every request below is sent to the app twice: through the whole app (where the short path
takes the plain requests) and straight to Litestar behind it. Status, headers and body must be
the same, and the short path must have taken the plain requests and left the rest alone.
"""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from artifacts.catalog import Catalog
from service import fast_routes
from service.app import create_app
from service.fast_routes import FastRoutes
from service.settings import Settings
from service.store import MemoryProfileStore


def _layer(app) -> FastRoutes:
    handler = app.asgi_handler
    while not isinstance(handler, FastRoutes):
        handler = handler.app
    return handler


@pytest.fixture
async def both(demo_bundle):
    """(client of the whole app, client of Litestar without the short path, the layer)."""
    apps = [create_app(Settings(), bundle=demo_bundle,
                       store=MemoryProfileStore(demo_bundle.profile_records()))
            for _ in range(2)]
    layer = _layer(apps[0])
    bypassed = _layer(apps[1])
    bypassed.routes = []  # the second app: every request goes on to Litestar
    async with AsyncTestClient(apps[0]) as fast, AsyncTestClient(apps[1]) as plain:
        yield fast, plain, layer


def _requests(demo_bundle, profiles) -> tuple[list[str], list[str]]:
    """(plain requests the short path must take, requests it must leave to Litestar)."""
    users = sorted(profiles)[:3] + ["stranger-1"]
    items = list(demo_bundle.items.ids[:3])
    market = Catalog(demo_bundle).markets[0]
    plain = []
    for user in users:
        plain += [f"/v1/users/{user}/recommendations", f"/v1/users/{user}/recommendations?n=1",
                  f"/v1/users/{user}/recommendations?n=100&market={market}",
                  f"/v1/users/{user}/homepage", f"/v1/users/{user}/homepage?n=3&market={market}",
                  f"/v1/users/{user}/homepage?sections=trending,on_sale&n=50",
                  f"/v1/users/{user}/size?item_id={items[0]}",
                  f"/v1/items/{items[1]}/similar?user_id={user}&n=5"]
    plain += [f"/v1/items/{item}/similar" for item in items]
    plain += [f"/v1/items/{items[0]}/similar?market={market}&n=2", "/v1/homepage",
              f"/v1/homepage?market={market}&n=4", f"/v1/sessions/s-1/size?item_id={items[2]}",
              # the server decodes the path before any routing: this is plain ``stranger-x``
              "/v1/users/stranger%2Dx/recommendations"]
    user = users[0]
    rest = [
        # invalid: Litestar's 400s
        f"/v1/users/{user}/recommendations?n=0", f"/v1/users/{user}/recommendations?n=101",
        f"/v1/users/{user}/recommendations?n=abc", f"/v1/users/{user}/recommendations?n=-1",
        f"/v1/users/{'u' * 129}/recommendations", "/v1/users/-bad/recommendations",
        f"/v1/users/{user}/recommendations?market=" + "m" * 129,
        f"/v1/users/{user}/size", f"/v1/users/{user}/homepage?n=51",
        # valid, but not in the plain form: Litestar interprets them
        f"/v1/users/{user}/recommendations?n=05", f"/v1/users/{user}/recommendations?n=3&n=4",
        f"/v1/users/{user}/recommendations?market=", f"/v1/users/{user}/recommendations?foo=1",
        f"/v1/users/{user}/recommendations?n", f"/v1/users/{user}/recommendations?n=1&",
        f"/v1/users/{user}%20x/recommendations", f"/v1/users/{user}/recommendations?n=%31",
        f"/v1/users/{user}/recommendations/",
        # raised by the handler (unknown market, item, section): Litestar's error map
        f"/v1/users/{user}/recommendations?market=ZZ", "/v1/items/no-such-item/similar",
        f"/v1/users/{user}/size?item_id=no-such-item", f"/v1/users/{user}/homepage?sections=nope",
        "/v1/homepage?market=ZZ",
        # other routes
        "/health", "/v1/nowhere", f"/v1/users/{user}/nothing",
    ]
    return plain, rest


async def _same(fast, plain, path: str, method: str = "GET") -> None:
    a = await fast.request(method, path)
    b = await plain.request(method, path)
    assert (a.status_code, a.headers.get("content-type"), a.headers.get("content-length")) == \
        (b.status_code, b.headers.get("content-type"), b.headers.get("content-length")), path
    assert a.content == b.content, path


async def test_plain_page_views_take_the_short_path_with_the_same_answers(
        both, demo_bundle, profiles):
    fast, plain, layer = both
    taken, _ = _requests(demo_bundle, profiles)
    for n, path in enumerate(taken, 1):
        await _same(fast, plain, path)
        assert layer.answered == n, f"not on the short path: {path}"


async def test_everything_else_is_left_to_litestar(both, demo_bundle, profiles):
    fast, plain, layer = both
    _, rest = _requests(demo_bundle, profiles)
    for path in rest:
        await _same(fast, plain, path)
        assert layer.answered == 0, f"taken on the short path: {path}"
    user = sorted(profiles)[0]
    for method in ("HEAD", "OPTIONS"):
        await _same(fast, plain, f"/v1/users/{user}/recommendations", method)
    # a method the route lacks: Litestar's 405 (its list of allowed methods comes in no set
    # order, so only the status is compared)
    for client in (fast, plain):
        assert (await client.post(f"/v1/users/{user}/recommendations")).status_code == 405
    assert layer.answered == 0


async def test_short_path_answers_are_measured_under_their_route(both, profiles):
    fast, _, layer = both
    user = sorted(profiles)[0]
    assert (await fast.get(f"/v1/users/{user}/recommendations?n=2")).status_code == 200
    assert layer.answered == 1
    text = (await fast.get("/metrics")).text
    assert ('reco_http_request_duration_seconds_count{method="GET",'
            'route="/v1/users/{user_id}/recommendations"}') in text


def test_every_hot_handler_is_a_registered_route(demo_bundle):
    layer = _layer(create_app(Settings(), bundle=demo_bundle, store=MemoryProfileStore()))
    assert sorted(r.template for r in layer.routes) == sorted([
        "/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar",
        "/v1/users/{user_id}/homepage", "/v1/homepage", "/v1/users/{user_id}/size",
        "/v1/sessions/{session_id}/size"])
    assert len(fast_routes.HOT) == len(layer.routes)


async def test_an_invalid_host_header_is_refused_as_litestar_refuses_it(both, profiles):
    fast, plain, layer = both
    path = f"/v1/users/{sorted(profiles)[0]}/recommendations?n=1"
    for host in ("evil.com/x", "a b", "<x>"):
        a = await fast.get(path, headers={"host": host})
        b = await plain.get(path, headers={"host": host})
        assert (a.status_code, a.content) == (b.status_code, b.content), host
        assert a.status_code == 400 and a.json()["error"] == "bad_request", a.json()
        assert "host" in a.json()["detail"].lower()
    assert layer.answered == 0
    for host in ("shop.example:8000", "127.0.0.1", "[::1]:8000"):
        assert (await fast.get(path, headers={"host": host})).status_code == 200
    assert layer.answered == 3


class _CountingStore(MemoryProfileStore):
    def __init__(self, records):
        super().__init__(records)
        self.user_reads = 0

    async def read_user(self, user_id):  # get_user reads through it too
        self.user_reads += 1
        return await super().read_user(user_id)


async def test_a_refused_request_reads_the_store_once_and_leaves_no_route_behind(
        demo_bundle, profiles):
    """An unknown market is refused before the store is read, so handing the request on to
    Litestar costs no second read; the route the short path named is not left in the scope."""
    store = _CountingStore(demo_bundle.profile_records())
    app = create_app(Settings(), bundle=demo_bundle, store=store)
    user, item = sorted(profiles)[0], demo_bundle.items.ids[0]
    async with AsyncTestClient(app) as client:
        for path in (f"/v1/users/{user}/recommendations?market=ZZ",
                     f"/v1/items/{item}/similar?user_id={user}&market=ZZ"):
            r = await client.get(path)
            assert r.status_code == 400 and r.json()["error"] == "bad_request", path
        assert store.user_reads == 0
        # refused by Litestar before routing, after the short path matched the route
        r = await client.get(f"/v1/users/{user}/recommendations?market=ZZ",
                             headers={"host": "a b"})
        assert r.status_code == 400
        text = (await client.get("/metrics")).text
    assert ('reco_http_error_responses_total{method="*",route="unmatched",status="400"}'
            in text), [line for line in text.splitlines() if "error_responses" in line]
