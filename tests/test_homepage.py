"""Homepage assembly (artifacts/homepage.py) on the demo bundle: page rules for every customer,
layouts by segment, privacy and consent (a test per rule), the trainer's lists, older bundles."""

import itertools
import json
import shutil

import msgspec
import numpy as np
import pytest

from artifacts import ranking
from artifacts.bundle import Bundle
from artifacts.catalog import Catalog
from artifacts.homepage import (ANONYMOUS, OPTED_OUT, PERSONAL, HomepageRules, HomepageView,
                                build)
from artifacts.profiles import LiveItem, LiveState

NOW = 1_900_000_000.0  # live events are stamped relative to this; nothing reads the clock
PERSONAL_KEYS = {"recently_viewed", "for_you", "because_you_bought", "buy_again",
                 "back_in_size", "new_arrivals", "on_sale"}


@pytest.fixture(scope="module")
def view(demo_bundle):
    return HomepageView(Catalog(demo_bundle))


def _page(view, profile, *, audience=PERSONAL, n=8, live=None, **kw):
    market = kw.pop("market", profile.market if profile is not None else None)
    return build(view, profile=profile, live=live, market=market, n=n, audience=audience,
                 now=NOW, **kw)


def _ids(page, key=None):
    return [i.item_id for s in page.sections if key in (None, s.key) for i in s.items]


def _items_of(view, category: str, market: str | None, k: int = 5) -> list[str]:
    """Items of a category that may be shown in the market, most popular first."""
    catalog = view.catalog
    cat = catalog.categories.index(category)
    available = catalog.available(catalog.market_row(market))
    idx = [i for i in range(len(catalog.ids)) if catalog.category[i] == cat and available[i]]
    return [catalog.ids[i] for i in idx[:k]]


def _with_candidates(profile, first: list[str], **changes):
    """The profile with ``first`` leading its candidates (as the trainer would write them)."""
    rest = [(c, s, src) for c, s, src in zip(profile.candidate_ids(), profile.candidate_scores(),
                                             profile.candidate_sources())
            if c not in first]
    return msgspec.structs.replace(
        profile, candidates=first + [c for c, _, _ in rest],
        scores=[9.0] * len(first) + [s for _, s, _ in rest],
        sources=["personal"] * len(first) + [src for _, _, src in rest], ranked=None, **changes)


def _shopper(profiles, consent=False):
    return next(p for p in profiles.values() if p.market and len(p.purchased) >= 5
                and p.consent_sensitive is consent and p.consent_personalisation is not False)


# -- rules every page keeps ---------------------------------------------------------------------
def test_every_demo_customers_page_keeps_the_rules(view, profiles):
    catalog = view.catalog
    sensitive = np.asarray(catalog.bundle["item_sensitive"])
    max_run = view.rules.max_category_run
    for user, profile in profiles.items():
        page = _page(view, profile, n=12)
        assert page.sections, user
        ids = _ids(page)
        assert len(ids) == len(set(ids)), f"{user}: an item twice on one page"
        row = catalog.market_row(profile.market)
        never = ranking.not_again(catalog, profile)
        for section in page.sections:
            assert section.title and section.reason and section.items
            cats = []
            for item in section.items:
                idx = catalog.items.index(item.item_id)
                assert catalog.available(row)[idx], f"{item.item_id} not sold or not in stock"
                assert idx not in never, f"{user}: {item.item_id} bought, not repurchasable"
                assert item.source and item.reason
                if sensitive[idx] and profile.consent_sensitive is not True:
                    assert section.key == "trending", (user, section.key, item.item_id)
                cats.append(catalog.category[idx])
            runs = [len(list(g)) for _, g in itertools.groupby(cats)]
            assert max(runs) <= max_run, (user, section.key, cats)


def test_category_runs_are_cut_short(demo_bundle, profiles):
    view = HomepageView(Catalog(demo_bundle))
    view.rules = msgspec.structs.replace(view.rules, max_category_run=1)
    profile = _shopper(profiles)
    tops = _items_of(view, "tops", profile.market, 6)
    page = _page(view, _with_candidates(profile, tops), sections=["for_you"], n=6)
    cats = [view.catalog.category[view.catalog.items.index(i)] for i in _ids(page)]
    assert all(a != b for a, b in zip(cats, cats[1:])), cats


def test_items_not_sold_in_the_market_or_out_of_stock_never_appear(view, profiles):
    catalog = view.catalog
    profile = _shopper(profiles)
    stock = np.asarray(catalog.bundle["item_in_stock"])
    sold_here = catalog.available(catalog.market_row(profile.market))
    elsewhere = [catalog.ids[i] for i in np.flatnonzero(stock)
                 if not sold_here[i] and catalog.available(0)[i]][:5]
    out_of_stock = [catalog.ids[i] for i in np.flatnonzero(~stock)[:5]]
    assert elsewhere and out_of_stock
    page = _page(view, _with_candidates(profile, elsewhere + out_of_stock))
    assert not set(_ids(page)) & set(elsewhere + out_of_stock)
    assert _ids(page, "for_you"), "the rest of the candidates still fill the section"


def test_just_bought_never_appears_even_when_repurchasable(view, profiles):
    user, profile = next((u, p) for u, p in profiles.items()
                         if "buy_again" in p.candidate_sources()[:3])
    again = profile.candidate_ids()[profile.candidate_sources().index("buy_again")]
    page = _page(view, profile, n=12)
    assert again in _ids(page, "buy_again"), "repurchasable purchases come back as buy again"
    live = LiveState(purchased=[LiveItem(again, NOW - 60)])
    assert again not in _ids(_page(view, profile, live=live, n=12))


# -- layouts by segment ---------------------------------------------------------------------------
@pytest.mark.parametrize("segments,first,absent", [
    (["discount_hunter"], "on_sale", None),
    (["trend_seeker"], "new_arrivals", "on_sale"),
    (["vip"], "new_arrivals", "on_sale"),
    (["new"], "trending", None),
    (["lapsing"], "for_you", None),
    (["vip", "lapsing"], "for_you", None),  # lapsing comes first in the priority
    ([], "buy_again", None),
])
def test_layout_follows_segments(view, profiles, segments, first, absent):
    profile = msgspec.structs.replace(_shopper(profiles), segments=segments)
    assert "buy_again" in profile.candidate_sources()
    page = _page(view, profile)
    keys = [s.key for s in page.sections]
    assert keys[0] == first, keys
    assert page.layout == (segments[-1] if segments else "default")
    assert absent not in keys
    if "lapsing" in segments:
        assert page.layout == "lapsing" and page.sections[0].title.startswith("Welcome back")
    if segments == ["new"]:
        assert page.sections[0].title.startswith("Welcome!")


def test_requested_sections_only(view, profiles):
    profile = msgspec.structs.replace(_shopper(profiles), segments=["trend_seeker"])
    page = _page(view, profile, sections=["on_sale", "trending"])
    assert [s.key for s in page.sections] == ["trending", "on_sale"]  # layout order, then extra


def test_because_you_bought_names_a_recent_purchase(view, profiles):
    profile = _shopper(profiles)
    section = next(s for s in _page(view, profile).sections if s.key == "because_you_bought")
    assert section.anchor_item_id in profile.purchased[:5]
    name = view.name(view.catalog.items.index(section.anchor_item_id))
    assert section.title == f"Because you bought {name}" and name != section.anchor_item_id


# -- privacy and consent: a test per rule -----------------------------------------------------
def test_sensitive_items_stay_out_of_personal_sections_without_consent(view, profiles):
    profile = _shopper(profiles)
    sensitive = (_items_of(view, "maternity", profile.market, 3)
                 + _items_of(view, "lingerie", profile.market, 3))
    page = _page(view, _with_candidates(profile, sensitive, consent_sensitive=False))
    shown = {s.key: set(_ids(page, s.key)) for s in page.sections}
    for key in PERSONAL_KEYS:
        assert not shown.get(key, set()) & set(sensitive), key


def test_consent_in_the_profile_allows_them(view, profiles):
    profile = _shopper(profiles)
    sensitive = _items_of(view, "maternity", profile.market, 3)
    page = _page(view, _with_candidates(profile, sensitive, consent_sensitive=True))
    assert _ids(page, "for_you")[:3] == sensitive


def test_engaging_with_the_category_in_this_session_allows_that_category_only(view, profiles):
    profile = _shopper(profiles)
    maternity = _items_of(view, "maternity", profile.market, 4)
    lingerie = _items_of(view, "lingerie", profile.market, 3)
    candidate = _with_candidates(profile, maternity[1:] + lingerie, consent_sensitive=None)
    now_viewed = LiveState(viewed=[LiveItem(maternity[0], NOW - 120)])
    page = _page(view, candidate, live=now_viewed)
    assert _ids(page, "recently_viewed") == [maternity[0]]
    assert set(maternity[1:]) <= set(_ids(page, "for_you"))
    assert not set(lingerie) & set(_ids(page))
    yesterday = LiveState(viewed=[LiveItem(maternity[0], NOW - 86_400)])
    page = _page(view, candidate, live=yesterday)
    assert not set(maternity) & set(_ids(page)), "a view outside the session is not engagement"


def test_a_page_says_until_when_it_stays_the_same(view, profiles):
    """The session window is the only way time enters a page: ``stable_until`` is when the
    oldest event inside it leaves it, and the page is the same until then, not after."""
    profile = _shopper(profiles)
    maternity = _items_of(view, "maternity", profile.market, 4)
    candidate = _with_candidates(profile, maternity[1:], consent_sensitive=None)
    plain = _items_of(view, "tops", profile.market, 1)
    live = LiveState(viewed=[LiveItem(maternity[0], NOW - 120), LiveItem(plain[0], NOW - 60)])
    page = _page(view, candidate, live=live)
    window = view.rules.session_minutes * 60
    assert page.stable_until == NOW - 120 + window
    later = build(view, profile=candidate, live=live, market=profile.market, n=8,
                  audience=PERSONAL, now=page.stable_until - 0.001)
    assert msgspec.json.encode(later) == msgspec.json.encode(page)
    after = build(view, profile=candidate, live=live, market=profile.market, n=8,
                  audience=PERSONAL, now=page.stable_until + 1)
    assert set(maternity[1:]) <= set(_ids(page, "for_you"))
    assert not set(maternity[1:]) & set(_ids(after, "for_you")), "the session view is out"
    assert after.stable_until == NOW - 60 + window
    assert _page(view, candidate).stable_until == float("inf"), "no live state: no end"


def test_never_in_sections_that_state_an_inference(view, profiles, demo_bundle):
    """"Because you bought" states why: it shows no sensitive item even with consent, and is
    never built around a sensitive purchase."""
    catalog = view.catalog
    sensitive = np.asarray(demo_bundle["item_sensitive"])
    neighbours = np.asarray(demo_bundle["neighbours_idx"])
    profile = _shopper(profiles, consent=True)
    row = catalog.market_row(profile.market)
    anchor = next(i for i in range(len(catalog.ids)) if not sensitive[i]
                  and catalog.available(row)[i]
                  and sum(sensitive[j] for j in neighbours[i][:6] if j >= 0) >= 1)
    bought_sensitive = next(i for i in np.flatnonzero(sensitive) if neighbours[i][0] >= 0)
    purchased = [catalog.ids[bought_sensitive], catalog.ids[anchor], *profile.purchased]
    page = _page(view, msgspec.structs.replace(profile, purchased=purchased), n=12)
    section = next(s for s in page.sections if s.key == "because_you_bought")
    assert section.anchor_item_id == catalog.ids[anchor]
    assert not any(sensitive[catalog.items.index(i.item_id)] for i in section.items)


def test_opted_out_customer_gets_the_market_homepage(view, profiles):
    profile = _shopper(profiles)
    top = view.catalog.ids[view.catalog.popular(view.catalog.market_row(profile.market))[0][0]]
    bought = msgspec.structs.replace(profile, purchased=[top, *profile.purchased],
                                     consent_personalisation=False)
    page = _page(view, bought, audience=OPTED_OUT,
                 live=LiveState(viewed=[LiveItem(profile.candidate_ids()[0], NOW)]))
    assert page.layout == "non_personal" and page.segments == profile.segments
    assert {s.key for s in page.sections} <= {"trending", "new_arrivals", "on_sale"}
    assert top not in _ids(page), "what they bought is still left out"
    assert not any(i.source.endswith("_for_you") for s in page.sections for i in s.items)


def test_anonymous_market_homepage(view):
    page = _page(view, None, audience=ANONYMOUS, market="DE")
    assert page.layout == "non_personal"
    assert [s.key for s in page.sections] == ["trending", "new_arrivals", "on_sale"]
    assert page.sections[0].title == "Trending in DE"


def test_back_in_your_size_only_with_size_data(view, profiles):
    sizes = view.sizes
    assert sizes.available, "the demo bundle has a size model"
    profile = _shopper(profiles)
    assert profile.sizes
    page = _page(view, profile, sections=["back_in_size"], n=12)
    assert [s.key for s in page.sections] == ["back_in_size"]
    kept = {}
    for pref in profile.sizes:
        if pref.kind == "kept":
            kept.setdefault(pref.system, set()).add(pref.size)
    for item in page.sections[0].items:
        idx = view.catalog.items.index(item.item_id)
        system = sizes.system_of(idx)
        size = item.reason.removeprefix("in your size ")
        assert size in sizes.offered(idx) and size in kept[system], (item, kept)
    bare = msgspec.structs.replace(profile, sizes=[])
    assert not _page(view, bare, sections=["back_in_size"]).sections


# -- the trainer's lists and older bundles -----------------------------------------------------
def test_new_arrivals_and_sale_lists(view, shop, demo_bundle):
    catalog = view.catalog
    items = {r["item_id"]: r for r in shop.items.iter_rows(named=True)}
    end = np.datetime64(demo_bundle.manifest.data_end)
    for market in catalog.markets:
        row = catalog.market_row(market)
        new = view.market_list("new_arrivals", row)
        sale = view.market_list("on_sale", row)
        assert new and sale
        for idx, _ in new:
            seen = np.datetime64(items[catalog.ids[idx]]["first_seen"])
            assert catalog.available(row)[idx] and end - seen <= np.timedelta64(30, "D")
        for idx, _ in sale:
            item = items[catalog.ids[idx]]
            assert catalog.available(row)[idx] and item["price"] <= 0.9 * item["list_price"]
            assert view.markdown(idx) >= 10


def test_older_bundle_still_serves_the_sections_it_can(demo_bundle, profiles, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(demo_bundle.path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for name in ("item_name", "new_idx", "new_score", "sale_idx", "sale_score"):
        (old / f"{name}.npy").unlink()
        del manifest["files"][f"{name}.npy"]
    del manifest["segments"], manifest["homepage"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    view = HomepageView(Catalog(Bundle.open(old)))
    assert view.rules == HomepageRules()
    profile = _shopper(profiles)
    page = _page(view, msgspec.structs.replace(profile, segments=[]))
    keys = [s.key for s in page.sections]
    assert "for_you" in keys and "trending" in keys
    assert "new_arrivals" not in keys and "on_sale" not in keys
    assert page.incomplete and any("no new arrivals list" in n for n in page.notes)
    byb = next(s for s in page.sections if s.key == "because_you_bought")
    assert byb.title == f"Because you bought {byb.anchor_item_id}"  # no names: the id
