"""A seeded synthetic fashion shop, for tests and the quick-start demo.

:func:`generate_shop` returns canonical tables; the same arguments always give identical tables
(one ``numpy.random.Generator`` drawn in a fixed order, stable sorts). The shop is built so that
every model has something real to find:

- catalogue: departments women/men/kids with categories, each with a declared size system
  (:data:`SIZE_SYSTEMS`); sizes on offer are a contiguous part of the system, sometimes with one
  size missing; list prices by category; about 20% of items marked down (price < list_price)
  from a markdown date on; launch dates (first_seen) spread over the period, new arrivals in
  its last 30 days; markets from :data:`MARKETS` (most items everywhere, some exclusive to one
  or two markets); a few items out of stock; maternity and lingerie are sensitive.
- every item has a hidden style (one of :data:`STYLES`) and a fit: it runs small (needs one
  size up), true to size, or large. Every customer prefers 1-3 styles (about 70% of their own
  purchases, 80% before basics and rebuys), so co-purchases are structured.
- customers have a department, a market, a signup date, consent flags (about 5% refuse
  personalisation, about 10% allow sensitive categories), a kept size per size system of their
  department and one behaviour of :data:`BEHAVIOURS`: regular, discount_hunter (mostly
  marked-down items), trend_seeker (items launched in the last 30 days, at full price), vip
  (frequent, larger baskets, pricier items), new (signed up in the last 60 days, 0-1 orders),
  lapsing (bought regularly, stopped 155-300 days before the end). Some women customers are
  expecting for a while and buy maternity items then (and only then).
- purchases (about 17 per customer, heavy-tailed) come in orders (one ts, online or store) of
  items sold in the customer's market and already launched. A fashion item is bought once per
  customer; basics are rebought (quantity sometimes 2). The size is the kept size moved by the
  item's fit 70% of the time; otherwise the customer takes the usual size in an item that does
  not run true, and that purchase is returned with fit "small" (item runs small) or "large";
  half of those are exchanged 2-10 days later for the size that fits. 4% of other purchases
  are returned without fit feedback (changed mind). About 5% are gifts (another department,
  random size, never returned, no fit feedback). Fit feedback is on about 60% of rows.
- events: views before some purchases, carts with the size, browsing, anonymous sessions.

:func:`generate_shop_with_truth` also returns a :class:`ShopTruth` (behaviours, kept sizes,
styles, item fit, gift rows) that tests check models against; none of it is in the tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from training.data.schema import DATETIME, CanonicalData

MARKETS = ("SE", "DE", "GB", "US", "FR")
MARKET_SHARE = (0.15, 0.30, 0.25, 0.20, 0.10)
SIZE_SYSTEMS: dict[str, tuple[str, ...]] = {
    "eu_women": tuple(str(s) for s in range(32, 47, 2)),
    "alpha": ("XS", "S", "M", "L", "XL", "XXL"),
    "waist": tuple(str(s) for s in range(28, 39)),
    "shoes_eu": tuple(str(s) for s in range(36, 47)),
    "kids_height": tuple(str(s) for s in range(92, 165, 6)),
    "one_size": ("ONE",),
}
DEPARTMENTS = ("women", "men", "kids")
DEPARTMENT_SHARE = {"women": 0.55, "men": 0.30, "kids": 0.15}
STYLES = ("minimal", "classic", "boho", "street", "sporty", "romantic", "edgy", "preppy",
          "vintage", "outdoor", "party", "workwear", "scandi", "retro", "coastal", "glam")
COLOURS = ("Black", "White", "Navy", "Beige", "Red", "Green", "Grey", "Blue", "Pink", "Brown")
BEHAVIOURS = ("regular", "discount_hunter", "trend_seeker", "vip", "new", "lapsing")
BEHAVIOUR_SHARE = (0.45, 0.15, 0.10, 0.07, 0.10, 0.13)
# per behaviour: orders a year, extra items per order (Poisson), log-weight of a marked-down
# item, of an item launched in the last 30 days, and exponent of the relative list price
_ORDERS = np.array([9.5, 9.5, 11.0, 28.0, 0.0, 10.5])
_BASKET = np.array([1.3, 1.5, 1.3, 2.0, 0.8, 1.3])
_SALE = np.log([1.0, 40.0, 0.05, 0.5, 1.0, 1.0])
_FRESH = np.log([1.0, 1.0, 25.0, 3.0, 1.0, 1.0])
_PRICE = np.array([0.0, -0.5, 0.0, 0.8, 0.0, 0.0])


@dataclass(frozen=True)
class Category:
    department: str
    name: str
    size_system: str
    base_price: float
    share: float  # of the department's items
    noun: str
    sensitive: bool = False
    basic: bool = False  # true to size, never marked down, rebought


CATEGORIES = (
    Category("women", "dresses", "eu_women", 49.99, 0.14, "dress"),
    Category("women", "tops", "alpha", 19.99, 0.14, "top"),
    Category("women", "basics", "alpha", 9.99, 0.06, "basic tee", basic=True),
    Category("women", "knitwear", "alpha", 39.99, 0.09, "sweater"),
    Category("women", "trousers", "eu_women", 39.99, 0.09, "trousers"),
    Category("women", "jeans", "waist", 49.99, 0.09, "jeans"),
    Category("women", "jackets", "eu_women", 89.99, 0.07, "jacket"),
    Category("women", "shoes", "shoes_eu", 69.99, 0.08, "shoes"),
    Category("women", "accessories", "one_size", 19.99, 0.09, "bag"),
    Category("women", "lingerie", "alpha", 24.99, 0.07, "bra", sensitive=True),
    Category("women", "maternity", "eu_women", 39.99, 0.08, "maternity dress", sensitive=True),
    Category("men", "tops", "alpha", 19.99, 0.18, "shirt"),
    Category("men", "basics", "alpha", 9.99, 0.10, "basic tee", basic=True),
    Category("men", "knitwear", "alpha", 44.99, 0.12, "sweater"),
    Category("men", "trousers", "waist", 44.99, 0.12, "chinos"),
    Category("men", "jeans", "waist", 54.99, 0.14, "jeans"),
    Category("men", "jackets", "alpha", 99.99, 0.10, "jacket"),
    Category("men", "shoes", "shoes_eu", 79.99, 0.12, "shoes"),
    Category("men", "accessories", "one_size", 24.99, 0.12, "cap"),
    Category("kids", "tops", "kids_height", 12.99, 0.30, "kids top"),
    Category("kids", "trousers", "kids_height", 19.99, 0.25, "kids trousers"),
    Category("kids", "knitwear", "kids_height", 24.99, 0.15, "kids sweater"),
    Category("kids", "jackets", "kids_height", 39.99, 0.15, "kids jacket"),
    Category("kids", "accessories", "one_size", 9.99, 0.15, "kids hat"),
)
# kept size per (department, size system): centre index and spread in the system's order
_SIZE_CENTRE = {
    ("women", "eu_women"): (3.0, 1.3), ("women", "alpha"): (1.6, 1.0),
    ("women", "waist"): (2.0, 1.6), ("women", "shoes_eu"): (2.5, 1.3),
    ("men", "alpha"): (2.6, 1.0), ("men", "waist"): (5.0, 2.0), ("men", "shoes_eu"): (7.0, 1.3),
    ("kids", "kids_height"): (6.0, 3.5),
}
_SYSTEMS = tuple(SIZE_SYSTEMS)
_N_SIZES = np.array([len(SIZE_SYSTEMS[s]) for s in _SYSTEMS])
_SIZE_LABEL = np.array([list(SIZE_SYSTEMS[s]) + [""] * (_N_SIZES.max() - len(SIZE_SYSTEMS[s]))
                        for s in _SYSTEMS])
_DAY = 1440  # minutes
FRESH_DAYS = 30
GIFT_RATE = 0.04
FIT_RIGHT_RATE = 0.7


@dataclass(frozen=True)
class ShopTruth:
    """What the generator knows and the tables hide, for tests of models.

    ``item_size_shift`` is the size steps to add to a kept size to get the size that fits in
    the item: +1 runs small, -1 runs large, 0 true to size. ``gift`` is aligned with the rows
    of the purchases table.
    """

    behaviour: dict[str, str]
    department: dict[str, str]
    kept_sizes: dict[str, dict[str, str]]
    styles: dict[str, tuple[int, ...]]
    item_style: dict[str, int]
    item_size_shift: dict[str, int]
    expecting: frozenset[str]
    gift: np.ndarray


def generate_shop(seed: int = 7, n_customers: int = 2000, n_items: int = 1200,
                  days: int = 365, end: dt.date = dt.date(2026, 6, 30)) -> CanonicalData:
    """The synthetic shop as canonical tables (see the module docstring)."""
    return generate_shop_with_truth(seed, n_customers, n_items, days, end)[0]


def _allocate(n: int, shares: np.ndarray) -> np.ndarray:
    """Largest-remainder split of ``n`` by ``shares``, at least one each when possible."""
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(np.int64)
    if n >= len(shares):
        counts = np.maximum(counts, 1)
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


@dataclass
class _Items:
    dept: np.ndarray
    cat: np.ndarray
    system: np.ndarray
    style: np.ndarray
    log_pop: np.ndarray
    log_rel_price: np.ndarray
    list_price: np.ndarray
    sale_price: np.ndarray
    launch: np.ndarray  # minutes from the period start
    markdown: np.ndarray  # minutes; int64 max when never marked down
    in_market: np.ndarray  # (markets, items) bool
    offered: np.ndarray  # (items, max sizes) bool
    shift: np.ndarray
    in_stock: np.ndarray


def _make_items(rng: np.random.Generator, n: int, days: int) -> _Items:
    cats = CATEGORIES
    shares = np.array([DEPARTMENT_SHARE[c.department] * c.share for c in cats])
    cat = rng.permutation(np.repeat(np.arange(len(cats)), _allocate(n, shares)))
    dept = np.array([DEPARTMENTS.index(c.department) for c in cats])[cat]
    system = np.array([_SYSTEMS.index(c.size_system) for c in cats])[cat]
    basic = np.array([c.basic for c in cats])[cat]
    base = np.array([c.base_price for c in cats])[cat]
    list_price = np.maximum(np.round(base * rng.lognormal(0.0, 0.25, n)) - 0.01, 2.99)
    log_rel_price = np.log(list_price / base)

    u = rng.random(n)
    launch_day = np.where(u < 0.35, rng.integers(-365, 0, n),
                          np.where(u < 0.90, rng.integers(0, max(days - FRESH_DAYS, 1), n),
                                   rng.integers(max(days - FRESH_DAYS, 0), days, n)))
    launch_day = np.where(basic, rng.integers(-365, 0, n), launch_day)
    eligible = ~basic & (launch_day <= days - 21)
    on_sale = eligible & (rng.random(n) < 0.2 * n / max(eligible.sum(), 1))
    markdown_day = np.minimum(launch_day + rng.integers(40, 200, n), days - 3)
    markdown_day = np.maximum(markdown_day, launch_day + 7)
    discount = rng.choice([0.2, 0.3, 0.4, 0.5], n)
    sale_price = np.where(on_sale, np.round(list_price * (1 - discount), 2), list_price)

    exclusive = ~basic & (rng.random(n) < 0.15)
    first = rng.integers(0, len(MARKETS), n)
    second = np.where(rng.random(n) < 0.3, rng.integers(0, len(MARKETS), n), first)
    m = np.arange(len(MARKETS))[:, None]
    in_market = ~exclusive[None, :] | (m == first[None, :]) | (m == second[None, :])

    n_sizes = _N_SIZES[system]
    full = basic | (rng.random(n) < 0.55)
    trim = np.ceil(n_sizes * 0.3).astype(np.int64)
    lo = np.where(full, 0, rng.integers(0, trim + 1))
    hi = np.where(full, n_sizes - 1, n_sizes - 1 - rng.integers(0, trim + 1))
    idx = np.arange(_N_SIZES.max())[None, :]
    offered = (idx >= lo[:, None]) & (idx <= hi[:, None])
    gap = ~basic & (hi - lo >= 3) & (rng.random(n) < 0.1)
    gap_at = lo + 1 + (rng.random(n) * np.maximum(hi - lo - 1, 1)).astype(np.int64)
    offered[gap, gap_at[gap]] = False

    shift = rng.choice([-1, 0, 1], n, p=[0.15, 0.7, 0.15])
    shift = np.where(basic | (n_sizes == 1), 0, shift)
    in_stock = basic | (rng.random(n) >= 0.03)
    never = np.iinfo(np.int64).max
    return _Items(dept, cat, system, rng.integers(0, len(STYLES), n),
                  rng.normal(0.0, 0.8, n), log_rel_price, list_price, sale_price,
                  launch_day.astype(np.int64) * _DAY,
                  np.where(on_sale, markdown_day.astype(np.int64) * _DAY, never),
                  in_market, offered, shift, in_stock)


def _choose(rng: np.random.Generator, items: _Items, style_logw: np.ndarray, dept: np.ndarray,
            market: np.ndarray, ts: np.ndarray, behaviour: np.ndarray,
            maternity_ok: np.ndarray, only: np.ndarray | None = None,
            chunk: int = 4096) -> np.ndarray:
    """One item per row, drawn from weights that depend on the row; -1 when none is allowed.

    ``style_logw`` is (rows, styles); the other arguments are per row. The weight of an item is
    its popularity times the style preference, with multipliers for marked-down, freshly
    launched and pricier items by behaviour; items of another department, not sold in the
    market, not yet launched or (maternity) outside an expecting customer's window have weight
    zero. Rows are drawn per department against that department's items only.
    """
    maternity = np.array([c.name == "maternity" for c in CATEGORIES])[items.cat]
    sale_mult, fresh_mult = np.exp(_SALE)[:, None], np.exp(_FRESH)[:, None]
    out = np.full(len(ts), -1, dtype=np.int64)
    for d in range(len(DEPARTMENTS)):
        cols = np.flatnonzero((items.dept == d) & (True if only is None else only))
        rows = np.flatnonzero(dept == d)
        if len(cols) == 0 or len(rows) == 0:
            continue
        base = np.exp(items.log_pop[cols][None, :] + np.log(6.0) * maternity[cols][None, :]
                      + _PRICE[:, None] * items.log_rel_price[cols][None, :])  # (behaviours, n)
        launch, markdown = items.launch[cols][None, :], items.markdown[cols][None, :]
        style, mat = items.style[cols], maternity[cols][None, :]
        in_market = items.in_market[:, cols]
        for start in range(0, len(rows), chunk):
            r = rows[start:start + chunk]
            t, b = ts[r][:, None], behaviour[r]
            w = base[b] * np.exp(style_logw[r])[:, style]
            w *= np.where(markdown <= t, sale_mult[b], 1.0)
            w *= np.where(t - launch < FRESH_DAYS * _DAY, fresh_mult[b], 1.0)
            w *= in_market[market[r]] & (launch <= t) & (~mat | maternity_ok[r][:, None])
            cum = np.cumsum(w, axis=1)
            total = cum[:, -1]
            pick = (cum < (rng.random(len(r)) * total)[:, None]).sum(axis=1)
            out[r] = np.where(total > 0, cols[np.minimum(pick, len(cols) - 1)], -1)
    return out


@dataclass
class _Customers:
    dept: np.ndarray
    market: np.ndarray
    behaviour: np.ndarray
    signup: np.ndarray  # minutes from the period start
    start: np.ndarray  # first minute they can order
    stop: np.ndarray  # minute they stop ordering
    styles: list[tuple[int, ...]]
    style_logw: np.ndarray  # (customers, styles)
    kept: np.ndarray  # (customers, size systems) index in the system, -1 when not shopped
    online: np.ndarray
    consent: np.ndarray
    consent_sensitive: np.ndarray
    expecting: np.ndarray
    expecting_from: np.ndarray
    expecting_to: np.ndarray


def _make_customers(rng: np.random.Generator, n: int, days: int) -> _Customers:
    dept = rng.choice(len(DEPARTMENTS), n, p=[0.60, 0.33, 0.07])
    market = rng.choice(len(MARKETS), n, p=MARKET_SHARE)
    behaviour = rng.choice(len(BEHAVIOURS), n, p=BEHAVIOUR_SHARE)
    new = behaviour == BEHAVIOURS.index("new")
    lapsing = behaviour == BEHAVIOURS.index("lapsing")
    signup_day = np.where(new, rng.integers(max(days - 60, 0), days, n),
                          rng.integers(-730, max(days - 120, -729), n))
    signup_day = np.where(lapsing, rng.integers(-730, -30, n), signup_day)
    signup = signup_day * _DAY + rng.integers(8 * 60, 23 * 60, n)
    start = np.maximum(signup, 0)
    stop = np.where(lapsing, (days - rng.integers(155, 301, n)) * _DAY, days * _DAY)

    n_styles = len(STYLES)
    k = rng.choice([1, 2, 3], n, p=[0.30, 0.45, 0.25])
    order = np.argsort(rng.random((n, n_styles)), axis=1)
    preferred = np.argsort(order, axis=1) < k[:, None]
    style_logw = np.where(preferred, np.log(4.0 * (n_styles - k) / k)[:, None], 0.0)
    styles = [tuple(sorted(row[:kk].tolist())) for row, kk in zip(order, k)]

    z, z_feet = rng.normal(size=n), rng.normal(size=n)
    kept = np.full((n, len(_SYSTEMS)), -1, dtype=np.int64)
    kept[:, _SYSTEMS.index("one_size")] = 0
    for (department, system), (centre, spread) in _SIZE_CENTRE.items():
        rows = dept == DEPARTMENTS.index(department)
        j = _SYSTEMS.index(system)
        body = 0.6 * z + 0.8 * z_feet if system == "shoes_eu" else z
        idx = np.clip(np.round(centre + spread * body), 0, _N_SIZES[j] - 1).astype(np.int64)
        kept[rows, j] = idx[rows]

    expecting = (dept == DEPARTMENTS.index("women")) & (rng.random(n) < 0.08)
    expecting_from = rng.integers(0, max(days - 90, 1), n) * _DAY
    return _Customers(dept, market, behaviour, signup, start, stop, styles, style_logw, kept,
                      rng.beta(3.0, 1.5, n), rng.random(n) >= 0.05, rng.random(n) < 0.10,
                      expecting, expecting_from, expecting_from + 200 * _DAY)


def _labels(prefix: str, n: int) -> np.ndarray:
    width = max(5, len(str(n)))
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width))


def _datetimes(start: dt.datetime, minutes: np.ndarray) -> np.ndarray:
    return np.datetime64(start, "us") + minutes.astype("timedelta64[m]").astype("timedelta64[us]")


def generate_shop_with_truth(seed: int = 7, n_customers: int = 2000, n_items: int = 1200,
                             days: int = 365, end: dt.date = dt.date(2026, 6, 30),
                             ) -> tuple[CanonicalData, ShopTruth]:
    """The synthetic shop and the hidden truth behind it (see the module docstring)."""
    if n_customers < 1 or n_items < len(CATEGORIES) or days < 1:
        raise ValueError(f"need n_customers >= 1, n_items >= {len(CATEGORIES)} and days >= 1")
    rng = np.random.default_rng(seed)
    period_start = dt.datetime.combine(end, dt.time()) - dt.timedelta(days=days - 1)
    items = _make_items(rng, n_items, days)
    cust = _make_customers(rng, n_customers, days)

    lines = _purchase_lines(rng, items, cust, days)
    c, ts, item, system, chosen = (lines[k] for k in ("c", "ts", "item", "system", "chosen"))
    gift = lines["gift"]
    price = np.where(items.markdown[item] <= ts, items.sale_price[item], items.list_price[item])
    basic = np.array([cat.basic for cat in CATEGORIES])[items.cat]
    quantity = np.where(basic[item] & (rng.random(len(c)) < 0.15), 2, 1)

    user_ids = _labels("c", n_customers)
    item_ids = _labels("i", n_items)
    purchases = pl.DataFrame({
        "user_id": user_ids[c], "item_id": item_ids[item], "ts": _datetimes(period_start, ts),
        "quantity": quantity.astype(np.int32), "price": price,
        "size": _SIZE_LABEL[system, chosen], "country": np.array(MARKETS)[cust.market[c]],
        "channel": np.where(lines["online"], "online", "store"),
        "returned": lines["returned"],
        "fit": pl.Series(lines["fit"]).replace_strict(
            {1: "small", 2: "fit", 3: "large"}, default=None, return_dtype=pl.String),
        "_gift": gift,
    }).sort(["ts", "user_id"], maintain_order=True)

    events = _make_events(rng, items, cust, days, period_start, user_ids, item_ids,
                          purchases_rows=(c, ts, item, system, chosen, gift))
    data = CanonicalData("synthetic", purchases.drop("_gift"),
                         _items_table(items, item_ids, period_start),
                         _customers_table(cust, user_ids, period_start), events)
    truth = ShopTruth(
        behaviour=dict(zip(user_ids.tolist(), np.array(BEHAVIOURS)[cust.behaviour].tolist())),
        department=dict(zip(user_ids.tolist(), np.array(DEPARTMENTS)[cust.dept].tolist())),
        kept_sizes={uid: {_SYSTEMS[j]: str(_SIZE_LABEL[j, k]) for j, k in enumerate(row) if k >= 0}
                    for uid, row in zip(user_ids.tolist(), cust.kept.tolist())},
        styles=dict(zip(user_ids.tolist(), cust.styles)),
        item_style=dict(zip(item_ids.tolist(), items.style.tolist())),
        item_size_shift=dict(zip(item_ids.tolist(), items.shift.tolist())),
        expecting=frozenset(user_ids[cust.expecting].tolist()),
        gift=purchases["_gift"].to_numpy(),
    )
    return data, truth


def _take(lines: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in lines.items()}


def _purchase_lines(rng: np.random.Generator, items: _Items, cust: _Customers,
                    days: int) -> dict[str, np.ndarray]:
    """Purchase lines as arrays: customer, ts, online, gift, item, size index, returned, fit.

    ``fit`` is a code: 0 none, 1 small, 2 fit, 3 large.
    """
    n_customers = len(cust.dept)
    span = np.maximum(cust.stop - cust.start, 0)
    rate = _ORDERS[cust.behaviour] * rng.lognormal(0.0, 0.7, n_customers)
    n_orders = rng.poisson(rate * span / (365 * _DAY))
    new = cust.behaviour == BEHAVIOURS.index("new")
    lapsing = cust.behaviour == BEHAVIOURS.index("lapsing")
    n_orders = np.where(new, (rng.random(n_customers) < 0.6) & (span > 0), n_orders)
    n_orders = np.where(lapsing & (span >= 60 * _DAY), np.maximum(n_orders, 3), n_orders)
    order_cust = np.repeat(np.arange(n_customers), n_orders)
    order_ts = cust.start[order_cust] + (rng.random(len(order_cust))
                                         * span[order_cust]).astype(np.int64)
    order_online = rng.random(len(order_cust)) < cust.online[order_cust]
    line_order = np.repeat(np.arange(len(order_cust)),
                           1 + rng.poisson(_BASKET[cust.behaviour[order_cust]]))
    c, ts = order_cust[line_order], order_ts[line_order]
    gift = rng.random(len(c)) < GIFT_RATE
    r = rng.random(len(c))
    dept = cust.dept[c]
    gift_dept = np.where(dept == 2, np.where(r < 0.5, 0, 1), np.where(r < 0.6, 2, 1 - dept))
    maternity_ok = (~gift & cust.expecting[c] & (ts >= cust.expecting_from[c])
                    & (ts < cust.expecting_to[c]))
    item = _choose(rng, items, cust.style_logw[c], np.where(gift, gift_dept, dept),
                   cust.market[c], ts, cust.behaviour[c], maternity_ok)
    basic = np.array([cat.basic for cat in CATEGORIES])[items.cat]
    favourite = _choose(rng, items, cust.style_logw, cust.dept, cust.market,
                        np.full(n_customers, days * _DAY), np.zeros(n_customers, np.int64),
                        np.zeros(n_customers, bool), only=basic)
    rebuy = ~gift & (favourite[c] >= 0) & (rng.random(len(c)) < 0.08)
    item = np.where(rebuy, favourite[c], item)

    # sizes: the kept size moved by the item's fit, usually; gifts in a random size
    system = items.system[item]
    kept = cust.kept[c, system]
    shift = items.shift[item]
    chosen = kept + np.where(rng.random(len(c)) < FIT_RIGHT_RATE, shift, 0)
    random_size = np.argmax(items.offered[item] * rng.random((len(c), _N_SIZES.max())), axis=1)
    chosen = np.where(gift, random_size, chosen)
    lines = {"c": c, "ts": ts, "online": order_online[line_order], "gift": gift, "item": item,
             "system": system, "kept": kept, "shift": shift, "chosen": chosen}
    lines = _take(lines, (item >= 0) & _offered(items, item, system, chosen))

    # a fashion item is bought once (the first time); basics are rebought
    key = lines["c"] * len(items.dept) + lines["item"]
    order = np.lexsort((lines["ts"], key))
    first = np.ones(len(key), bool)
    first[order[1:]] = key[order[1:]] != key[order[:-1]]
    lines = _take(lines, first | basic[lines["item"]])

    n = len(lines["c"])
    gift, shift, chosen, kept = lines["gift"], lines["shift"], lines["chosen"], lines["kept"]
    fit_return = ~gift & (shift != 0) & (chosen == kept)
    other_return = ~gift & ~fit_return & (rng.random(n) < 0.04)
    feedback = ~gift & ~fit_return & ~other_return & (rng.random(n) < 0.63)
    noise = np.where(rng.random(n) < 0.5, 1, 3)
    lines["returned"] = fit_return | other_return
    lines["fit"] = np.where(fit_return, np.where(shift > 0, 1, 3),
                            np.where(feedback, np.where(rng.random(n) < 0.08, noise, 2), 0))

    # half the fit returns are exchanged a few days later for the size that fits
    swap = _take(lines, fit_return & (rng.random(n) < 0.5))
    swap["ts"] = swap["ts"] + rng.integers(2 * _DAY, 10 * _DAY, len(swap["ts"]))
    swap["chosen"] = swap["kept"] + swap["shift"]
    swap["online"] = np.ones(len(swap["ts"]), bool)
    swap["returned"] = np.zeros(len(swap["ts"]), bool)
    swap["fit"] = np.where(rng.random(len(swap["ts"])) < 0.63, 2, 0)
    swap = _take(swap, (swap["ts"] < days * _DAY)
                 & _offered(items, swap["item"], swap["system"], swap["chosen"]))
    return {k: np.concatenate([lines[k], swap[k]]) for k in lines}


def _offered(items: _Items, item: np.ndarray, system: np.ndarray,
             size: np.ndarray) -> np.ndarray:
    """Whether ``size`` (an index in the item's system) exists and is on offer for ``item``."""
    inside = (size >= 0) & (size < _N_SIZES[system])
    return inside & items.offered[item, np.clip(size, 0, _N_SIZES.max() - 1)]


def _items_table(items: _Items, item_ids: np.ndarray, period_start: dt.datetime) -> pl.DataFrame:
    n = len(item_ids)
    which, pos = np.nonzero(items.offered)
    sizes = (pl.DataFrame({"i": which, "size": _SIZE_LABEL[items.system[which], pos]})
             .group_by("i", maintain_order=True).agg("size"))
    where, m = np.nonzero(items.in_market.T)
    markets = (pl.DataFrame({"i": where, "market": np.array(MARKETS)[m]})
               .sort(["i", "market"]).group_by("i", maintain_order=True).agg("market"))
    cats = CATEGORIES
    colour = np.array(COLOURS)[(items.style * 7 + np.arange(n)) % len(COLOURS)]
    noun = np.array([x.noun for x in cats])[items.cat]
    name = np.char.add(np.char.add(colour, " "),
                       np.char.add(np.char.add(np.array(STYLES)[items.style], " "), noun))
    return pl.DataFrame({
        "i": np.arange(n), "item_id": item_ids, "name": name,
        "category": np.array([x.name for x in cats])[items.cat],
        "department": np.array(DEPARTMENTS)[items.dept],
        "size_system": np.array(_SYSTEMS)[items.system],
        "list_price": items.list_price, "price": items.sale_price,
        "first_seen": _datetimes(period_start, items.launch),
        "sensitive": np.array([x.sensitive for x in cats])[items.cat],
        "in_stock": items.in_stock,
    }).join(sizes.rename({"size": "sizes"}), on="i", how="left", maintain_order="left").join(
        markets.rename({"market": "markets"}), on="i", how="left", maintain_order="left").drop("i")


def _customers_table(cust: _Customers, user_ids: np.ndarray,
                     period_start: dt.datetime) -> pl.DataFrame:
    return pl.DataFrame({
        "user_id": user_ids, "country": np.array(MARKETS)[cust.market],
        "signup": _datetimes(period_start, cust.signup),
        "consent_personalisation": cust.consent, "consent_sensitive": cust.consent_sensitive,
    })


def _event_frame(period_start: dt.datetime, kind: str, item_id: np.ndarray, ts: np.ndarray,
                 user_id: np.ndarray | None = None, session_id: np.ndarray | None = None,
                 size: np.ndarray | None = None) -> pl.DataFrame:
    n = len(item_id)

    def text(values: np.ndarray | None) -> pl.Series:
        return pl.Series([None] * n if values is None else values, dtype=pl.String)

    return pl.DataFrame({
        "user_id": text(user_id), "session_id": text(session_id), "item_id": text(item_id),
        "type": text(np.full(n, kind)), "size": text(size),
        "ts": pl.Series(_datetimes(period_start, ts)).cast(DATETIME),
    })


def _make_events(rng: np.random.Generator, items: _Items, cust: _Customers, days: int,
                 period_start: dt.datetime, user_ids: np.ndarray, item_ids: np.ndarray,
                 purchases_rows: tuple[np.ndarray, ...]) -> pl.DataFrame:
    """Views and carts: before a third of the purchases, browsing, anonymous sessions."""
    c, ts, item, system, chosen, gift = purchases_rows
    last = days * _DAY - 1
    frames = []
    sel = ~gift & (rng.random(len(c)) < 0.35)
    c, ts, item, system, chosen = (a[sel] for a in (c, ts, item, system, chosen))
    view_ts = np.maximum(ts - rng.integers(10, 3 * _DAY, len(ts)),
                         np.maximum(items.launch[item], 0))
    cart = rng.random(len(ts)) < 0.5
    cart_ts = np.maximum(ts - rng.integers(1, 30, len(ts)), view_ts)
    frames.append(_event_frame(period_start, "view", item_ids[item], view_ts, user_ids[c]))
    frames.append(_event_frame(period_start, "cart", item_ids[item[cart]], cart_ts[cart],
                               user_ids[c[cart]], size=_SIZE_LABEL[system[cart], chosen[cart]]))

    span = np.maximum(cust.stop - cust.start, 0)
    bc = np.repeat(np.arange(len(user_ids)), rng.poisson(5.0 * (span > 0)))
    bts = cust.start[bc] + (rng.random(len(bc)) * span[bc]).astype(np.int64)
    bitem = _choose(rng, items, cust.style_logw[bc], cust.dept[bc], cust.market[bc], bts,
                    cust.behaviour[bc], np.zeros(len(bc), bool))
    ok = bitem >= 0
    bc, bts, bitem = bc[ok], bts[ok], bitem[ok]
    bsys = items.system[bitem]
    bsize = cust.kept[bc, bsys] + items.shift[bitem]
    fits = ((bsize >= 0) & (bsize < _N_SIZES[bsys])
            & items.offered[bitem, np.clip(bsize, 0, _N_SIZES.max() - 1)])
    bcart = fits & (rng.random(len(bc)) < 0.15)
    frames.append(_event_frame(period_start, "view", item_ids[bitem], bts, user_ids[bc]))
    frames.append(_event_frame(period_start, "cart", item_ids[bitem[bcart]],
                               np.minimum(bts[bcart] + rng.integers(1, 20, bcart.sum()), last),
                               user_ids[bc[bcart]], size=_SIZE_LABEL[bsys[bcart], bsize[bcart]]))

    n_sessions = max(len(user_ids) // 4, 1)
    sid = np.repeat(np.arange(n_sessions), 1 + rng.poisson(3.0, n_sessions))
    sts = np.minimum(rng.integers(0, days * _DAY, n_sessions)[sid]
                     + rng.integers(0, 60, len(sid)), last)
    proxy = rng.integers(0, len(user_ids), n_sessions)[sid]  # a customer with the same taste
    sdept = rng.choice(len(DEPARTMENTS), n_sessions, p=[0.6, 0.3, 0.1])[sid]
    smarket = rng.choice(len(MARKETS), n_sessions, p=MARKET_SHARE)[sid]
    sitem = _choose(rng, items, cust.style_logw[proxy], sdept, smarket, sts,
                    np.zeros(len(sid), np.int64), np.zeros(len(sid), bool))
    size = np.argmax(items.offered[sitem] * rng.random((len(sid), _N_SIZES.max())), axis=1)
    scart = (sitem >= 0) & (rng.random(len(sid)) < 0.2)
    sview = (sitem >= 0) & ~scart
    sessions = _labels("s", n_sessions)
    frames.append(_event_frame(period_start, "view", item_ids[sitem[sview]], sts[sview],
                               session_id=sessions[sid[sview]]))
    frames.append(_event_frame(period_start, "cart", item_ids[sitem[scart]], sts[scart],
                               session_id=sessions[sid[scart]],
                               size=_SIZE_LABEL[items.system[sitem[scart]], size[scart]]))
    return pl.concat(frames).sort("ts", maintain_order=True)
