"""The served homepage gives exactly the answers of the reference implementation.

``tests/homepage_reference.py`` is the homepage as it was before it was vectorised (a frozen
copy). Every page here is built by both and compared as encoded JSON, byte for byte: every
demo customer in every market and none, several page sizes, anonymous / unknown / opted-out
visitors, live views, carts, purchases and size signals (in and out of the session), consent,
sensitive engagement, restricted sections, plain (unpacked) candidates, profiles of another
bundle version, and changed rules (category runs, layouts, as the offline evaluation makes).
"""

import copy
import random

import msgspec
import numpy as np
import pytest

from artifacts import homepage
from artifacts.catalog import Catalog
from artifacts.homepage_rules import SECTIONS, Layout
from artifacts.profiles import LiveItem, LiveState, SizeSignal
from tests import homepage_reference as reference

NOW = 1_900_000_000.0
AUDIENCES = (homepage.PERSONAL, homepage.ANONYMOUS, homepage.UNKNOWN, homepage.OPTED_OUT,
             homepage.UNAVAILABLE)


@pytest.fixture(scope="module")
def views(demo_bundle):
    catalog = Catalog(demo_bundle)
    return homepage.HomepageView(catalog), reference.HomepageView(catalog)


def _same(views, **kw):
    new, ref = views
    page = msgspec.structs.asdict(homepage.build(new, now=NOW, **kw))
    del page["stable_until"], page["shared"]  # not in the reference: see test_homepage.py
    got = msgspec.json.encode(page)
    want = msgspec.json.encode(reference.build(ref, now=NOW, **kw))
    assert got == want, kw


def _live(rng: random.Random, catalog: Catalog, sizes) -> LiveState:
    """Random live state: views, carts and purchases inside and outside the session, size
    signals after training, sensitive items among them."""
    ids = catalog.ids
    sensitive = np.flatnonzero(np.asarray(catalog.bundle["item_sensitive"])).tolist()

    def items(k):
        picks = [ids[rng.randrange(len(ids))] for _ in range(k)]
        if sensitive and rng.random() < 0.5:
            picks.insert(rng.randrange(len(picks) + 1), ids[rng.choice(sensitive)])
        if rng.random() < 0.2:
            picks.append("no-such-item")
        return [LiveItem(i, NOW - rng.choice([30, 600, 3000, 4000, 86_400])) for i in picks]

    signals = []
    if sizes.available and rng.random() < 0.5:
        for _ in range(rng.randrange(1, 4)):
            system = sizes.systems[rng.randrange(len(sizes.systems))]
            item = next((i for i in rng.sample(range(len(ids)), 50)
                         if sizes.system_of(i) == system.name), 0)
            signals.append(SizeSignal(ids[item], rng.choice(system.order),
                                      rng.choice(["view", "cart", "purchase", "kept"]),
                                      NOW - rng.choice([10, 10**9])))
    return LiveState(viewed=items(rng.randrange(0, 6)), cart=items(rng.randrange(0, 3)),
                     purchased=items(rng.randrange(0, 3)), sizes=signals)


def test_every_demo_customer_in_every_market(views, profiles):
    markets = [None, *views[0].catalog.markets]
    for k, profile in enumerate(profiles.values()):
        for market in (profile.market, markets[k % len(markets)]):
            for n in (1, 8, 13):
                _same(views, profile=profile, market=market, n=n, audience=homepage.PERSONAL)


def test_non_personal_pages(views, profiles):
    markets = [None, *views[0].catalog.markets]
    some = list(profiles.values())[:40]
    for market in markets:
        for n in (1, 3, 8, 12, 50):
            _same(views, profile=None, market=market, n=n, audience=homepage.ANONYMOUS)
            for audience in AUDIENCES[1:]:
                _same(views, profile=None, market=market, n=n, audience=audience)
        for profile in some:
            _same(views, profile=profile, market=market, n=8, audience=homepage.OPTED_OUT)


def test_live_events_consent_sections_and_segments(views, profiles):
    rng = random.Random(11)
    catalog = views[0].catalog
    markets = [None, *catalog.markets]
    keys = list(SECTIONS)
    for profile in list(profiles.values())[:250]:
        live = _live(rng, catalog, views[0].sizes)
        changed = msgspec.structs.replace(
            profile, consent_sensitive=rng.choice([None, True, False]),
            segments=rng.choice([profile.segments, [], ["new"], ["vip", "lapsing"],
                                 ["trend_seeker"], ["discount_hunter", "vip"]]))
        if rng.random() < 0.3:  # plain candidate lists, as live fold-in writes them
            changed = changed.with_candidates(changed.candidate_ids(),
                                              changed.candidate_scores(),
                                              changed.candidate_sources())
        elif rng.random() < 0.2:  # written for another bundle: ids mapped by this one
            changed = msgspec.structs.replace(changed, bundle_version="older")
        if rng.random() < 0.3:  # something bought recently leads the candidates
            first = [i.item_id for i in live.purchased[:1]]
            changed = changed.with_candidates(first + changed.candidate_ids(),
                                              [9.0] * len(first) + changed.candidate_scores(),
                                              ["personal"] * len(first)
                                              + changed.candidate_sources())
        sections = rng.choice([None, None, rng.sample(keys, rng.randrange(1, len(keys) + 1))])
        segments = rng.choice([None, None, ["new"]])
        audience = rng.choice([homepage.PERSONAL] * 4 + [homepage.OPTED_OUT])
        for market in (changed.market, rng.choice(markets)):
            _same(views, profile=changed, live=live, market=market, n=rng.choice([1, 4, 8, 20]),
                  audience=audience, sections=sections, segments=segments)


@pytest.mark.parametrize("run", [1, 2, 5])
def test_changed_rules(demo_bundle, profiles, run):
    """Other category runs and layouts, on views copied the way the evaluation does."""
    catalog = Catalog(demo_bundle)
    new, ref = homepage.HomepageView(catalog), reference.HomepageView(catalog)
    for first in (None, "trending", "on_sale", "because_you_bought"):
        order = list(new.rules.layouts["default"].sections)
        if first is not None:
            order = [first] + [s for s in order if s != first]
        rules = msgspec.structs.replace(
            new.rules, priority=[], max_category_run=run,
            layouts={"default": Layout(sections=order, reason="forced")})
        forced_new, forced_ref = copy.copy(new), copy.copy(ref)
        forced_new.rules = forced_ref.rules = rules
        for profile in list(profiles.values())[:60]:
            _same((forced_new, forced_ref), profile=profile, market=profile.market, n=6,
                  audience=homepage.PERSONAL)
        for market in (None, *catalog.markets):
            _same((forced_new, forced_ref), profile=None, market=market, n=10,
                  audience=homepage.UNKNOWN)


@pytest.mark.parametrize("run", [1, 3])
def test_one_category_flooding_the_candidates(demo_bundle, profiles, run):
    """Many items of one category in a row: runs are cut, the flood stops the section."""
    catalog = Catalog(demo_bundle)
    new, ref = homepage.HomepageView(catalog), reference.HomepageView(catalog)
    rules = msgspec.structs.replace(new.rules, max_category_run=run)
    new.rules = ref.rules = rules
    profile = next(p for p in profiles.values() if p.market and p.consent_sensitive is not True)
    row = catalog.market_row(profile.market)
    for cat in range(len(catalog.categories)):
        same = [catalog.ids[i] for i in range(len(catalog.ids))
                if catalog.category[i] == cat and catalog.available(row)[i]][:60]
        other = [catalog.ids[i] for i in range(len(catalog.ids)) if catalog.category[i] != cat][:5]
        for order in (same + other, same[:3] + other[:1] + same[3:] + other[1:]):
            flooded = profile.with_candidates(order, [1.0 / (k + 1) for k in range(len(order))],
                                              ["personal"] * len(order))
            for n in (2, 5, 12):
                _same((new, ref), profile=flooded, market=profile.market, n=n,
                      audience=homepage.PERSONAL, sections=["for_you", "new_arrivals", "on_sale"])


def test_scores_are_rounded_as_numpy_rounds_them():
    """Shown scores of float32 columns are rounded per item the way numpy rounds a column."""
    from math import copysign

    from artifacts.profiles import round5

    rng = np.random.default_rng(3)
    values = np.concatenate([
        *(rng.standard_normal(20_000).astype(np.float32) * s for s in (1e-5, 1e-3, 1, 1e3, 1e5)),
        (np.arange(-20_000, 20_000) + 0.5) / 100_000.0,  # exact ties
        [0.0, -0.0, 5e-6, -5e-6, 2.5e-5, -2.5e-5, 2.0**51 / 1e5, 3e10, -3e10, 1e300, -1e300,
         np.inf, -np.inf, np.nan]])
    want = values.astype(np.float64).round(5).tolist()
    for x, w in zip(values.tolist(), want):
        got = round5(x)
        assert (got == w and copysign(1, got) == copysign(1, w)) or (got != got and w != w), x
