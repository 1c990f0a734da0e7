"""Consent on the customer's own answers: sensitive items only with ``consent_sensitive``, and
nothing from the profile for a customer who opted out of personalisation (their purchases are
still left out)."""

from __future__ import annotations

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from artifacts.catalog import Catalog
from artifacts.profiles import ProfileRecord
from service.app import create_app
from service.recommender import OPTED_OUT
from service.settings import Settings
from service.sizes import OPTED_OUT as SIZE_OPTED_OUT
from service.store import MemoryProfileStore


def _client(demo_bundle, **fields):
    """A client whose customers all have ``fields`` set in their batch profile."""
    records = (ProfileRecord(r.user_id, msgspec.structs.replace(r.profile, **fields))
               for r in demo_bundle.profile_records())
    store = MemoryProfileStore(records)
    return AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store))


@pytest.fixture
def sensitive(demo_bundle) -> set[str]:
    catalog = Catalog(demo_bundle)
    found = {catalog.ids[i] for i in catalog.sensitive_idx}
    assert found, "the demo shop has sensitive items"
    return found


async def _items(client, user, **params) -> tuple[list[str], dict]:
    r = await client.get(f"/v1/users/{user}/recommendations", params={"n": 50, **params})
    assert r.status_code == 200, r.text
    return [i["item_id"] for i in r.json()["items"]], r.json()


async def test_sensitive_items_only_with_consent(demo_bundle, profiles, sensitive):
    users = [u for u, p in profiles.items() if set(p.candidate_ids()) & sensitive][:30]
    assert users, "some customers have sensitive candidates"
    async with _client(demo_bundle, consent_sensitive=False) as client:
        for user in users:
            items, _ = await _items(client, user)
            assert not set(items) & sensitive, user
            assert len(items) == 50  # filled without them
    async with _client(demo_bundle, consent_sensitive=True) as client:
        shown = [u for u in users if set((await _items(client, u))[0]) & sensitive]
    assert shown, "with consent, the customers' sensitive candidates are shown"


async def test_an_opted_out_customer_gets_popular_items_without_their_purchases(
        demo_bundle, profiles):
    user = next(u for u, p in profiles.items() if len(p.purchased) >= 3 and p.market)
    async with _client(demo_bundle, consent_personalisation=False,
                       consent_sensitive=True) as client:  # the same list as a stranger's
        items, body = await _items(client, user)
        market, _ = await _items(client, "nobody-knows-me", market=body["market"])
    assert body["source"] in ("popular", "popular_market") and body["notes"][0] == OPTED_OUT
    assert not set(items) & set(profiles[user].purchased)
    expected = [i for i in market if i not in profiles[user].purchased]
    assert items[:len(expected)] == expected


async def test_an_opted_out_customers_size_is_not_taken_from_their_history(
        demo_bundle, profiles):
    items = list(demo_bundle.items.ids[:200])
    async with _client(demo_bundle) as client:
        found = None
        for user in [u for u, p in profiles.items() if p.sizes][:30]:
            for item in items:
                r = await client.get(f"/v1/users/{user}/size", params={"item_id": item})
                if r.json()["source"] == "profile":
                    found = (user, item)
                    break
            if found:
                break
    assert found, "some customer's size comes from their history"
    user, item = found
    async with _client(demo_bundle, consent_personalisation=False) as client:
        body = (await client.get(f"/v1/users/{user}/size", params={"item_id": item})).json()
    assert body["source"] == "none" and body["notes"] == [SIZE_OPTED_OUT], body
