"""The id mixes of the load benchmark: one file of request paths per endpoint.

Written by ``benchmarks/load.py`` to ``benchmarks/out/mix/`` and read by the wrk Lua scripts of
``benchmarks/loadgen.py``, which pick one path at random per request. Deterministic from the
seed. A mix is realistic traffic for its page: customers with a batch profile, customers the
bundle does not know (random ids of the same shape), anonymous sessions and visitors.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

from artifacts.bundle import Bundle
from artifacts.sizing import SizeView

MAX_PER_SECTION = 50  # the homepage's n (items per section) is at most 50


def _random_ids(rng: random.Random, count: int, width: int, taken: set[str]) -> list[str]:
    """``count`` random hex ids of ``width`` characters, none of them in ``taken``."""
    ids: list[str] = []
    while len(ids) < count:
        candidate = f"{rng.getrandbits(4 * width):0{width}x}"
        if candidate not in taken:
            ids.append(candidate)
    return ids


def _customer_mix(rng: random.Random, known: list[str], count: int, share: float,
                  taken: set[str]) -> list[str]:
    """``share`` of ``count`` ids drawn from ``known``, the rest unknown ids of the same shape;
    shuffled."""
    n_known = round(count * share)
    ids = rng.choices(known, k=n_known)
    ids += _random_ids(rng, count - n_known, max(len(u) for u in known), taken)
    rng.shuffle(ids)
    return ids


def _sized_items(bundle: Bundle, fallback: np.ndarray) -> tuple[np.ndarray, str]:
    """Items for which ``artifacts.sizing.choose_size`` has a size to choose (a size system
    and more than one size on offer, or none declared in a system of several sizes), and a
    note; ``fallback`` with a warning when the bundle has no size model."""
    view = SizeView.from_bundle(bundle)
    if not view.available:
        why = " (the H&M data carries no sizes)" if bundle.manifest.dataset == "hm" else ""
        return fallback, (f"the bundle has no size model{why}: every size answer is 'no_model' "
                          "after the customer's or session's store read, so the size decision "
                          "itself is not measured; items: those with neighbours or sales")
    system = np.asarray(view.item_system)
    offered = np.asarray(view.item_offered).astype(bool).sum(axis=1)
    order = np.asarray([len(s.order) for s in view.systems])
    several = np.where(system >= 0, order[np.maximum(system, 0)], 0) > 1
    items = np.flatnonzero((system >= 0) & ((offered > 1) | ((offered == 0) & several)))
    if items.size == 0:
        return fallback, ("no item of the bundle has sizes to choose from: every size answer "
                          "says why not; items: those with neighbours or sales")
    return items, f"items with sizes to choose from ({items.size:,}), uniformly"


def write_mixes(bundle: Bundle, folder: Path, *, count: int, known_share: float, n: int,
                seed: int) -> tuple[dict[str, Path], list[tuple[tuple[str, ...], str]]]:
    """``count`` paths per endpoint (one per line, in ``folder``, as the Lua scripts read
    them), and notes for the report: (the endpoints a note is about, the note).

    Deterministic from ``seed``; each mix added later has its own generator (seeded from the
    seed and its name), so adding one leaves the others as they were.

    - recommendations, homepage, bare_profile (the bare app's profile read): ``known_share``
      customers with a batch profile, the rest random ids of the same shape that no profile
      has (the same ids for all three);
    - similar: items with neighbours or ALS factors (sold in the training window), uniformly,
      so the mmap'd neighbour rows are hit all over;
    - homepage_anonymous: the market homepage, without a market and with each of the bundle's
      markets (if it has any), uniformly;
    - size: as recommendations, known customers taken from those with size evidence when the
      bundle has a size model, on items with sizes to choose from;
    - session_size: random session ids (anonymous visitors the store has not seen), same items.
    """
    rng = random.Random(seed)
    users: list[str] = []
    sized_users: list[str] = []
    for record in bundle.profile_records():
        users.append(record.user_id)
        if record.profile.sizes:
            sized_users.append(record.user_id)
    if not users:
        sys.exit(f"bundle {bundle.version} has no profiles: nothing to personalise")
    known = set(users)
    user_ids = _customer_mix(rng, users, count, known_share, known)
    has_neighbours = np.asarray(bundle["neighbours_idx"][:, 0]) >= 0
    seen = np.asarray(bundle["item_factors"]).any(axis=1)
    items = np.flatnonzero(has_neighbours | seen)
    if items.size == 0:
        sys.exit(f"bundle {bundle.version} has no item with neighbours or sales")
    ids = bundle.items.ids
    item_ids = [ids[i] for i in rng.choices(items.tolist(), k=count)]

    size_rng = random.Random(f"{seed}:size")
    sized_items, size_note = _sized_items(bundle, items)
    size_users = _customer_mix(size_rng, sized_users or users, count, known_share, known)
    size_items = [ids[i] for i in size_rng.choices(sized_items.tolist(), k=count)]
    session_rng = random.Random(f"{seed}:session_size")
    sessions = _random_ids(session_rng, count, 32, set())
    session_items = [ids[i] for i in session_rng.choices(sized_items.tolist(), k=count)]
    markets = [None, *bundle.manifest.markets]

    query = f"?n={n}"
    per_section = f"?n={min(n, MAX_PER_SECTION)}"
    lines = {
        "bare": ["/bare"],
        "bare_profile": [f"/bare/users/{u}" for u in user_ids],
        "recommendations": [f"/v1/users/{u}/recommendations{query}" for u in user_ids],
        "similar": [f"/v1/items/{i}/similar{query}" for i in item_ids],
        "homepage": [f"/v1/users/{u}/homepage{per_section}" for u in user_ids],
        "homepage_anonymous": [f"/v1/homepage{per_section}" + (f"&market={m}" if m else "")
                               for m in markets],
        "size": [f"/v1/users/{u}/size?item_id={i}" for u, i in zip(size_users, size_items,
                                                                   strict=True)],
        "session_size": [f"/v1/sessions/{s}/size?item_id={i}"
                         for s, i in zip(sessions, session_items, strict=True)],
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in lines.items():
        paths[name] = folder / f"{name}.txt"
        paths[name].write_text("\n".join(rows) + "\n")
    n_known = round(count * known_share)
    customers = (f"{known_share:.0%} customers with a profile ({len(users):,} in the "
                 f"bundle), {1 - known_share:.0%} unknown ids")
    notes = [
        (("recommendations", "homepage", "bare_profile"),
         f"{customers}; {count:,} paths ({n_known:,} known)"),
        (("similar",), f"{items.size:,} of {len(ids):,} items with neighbours or sales"),
        (("homepage_anonymous",),
         f"no market and each of {len(markets) - 1} markets, uniformly" if len(markets) > 1
         else "no market (the bundle has none)"),
        (("size",), f"{known_share:.0%} customers with a profile"
                    + (f" and size evidence ({len(sized_users):,})" if sized_users else "")
                    + f", the rest unknown ids; {size_note}"),
        (("session_size",), "random session ids (anonymous, no events), the size items"),
        (("recommendations", "similar", "homepage", "homepage_anonymous"),
         f"n={n} items per answer, {min(n, MAX_PER_SECTION)} per homepage section"),
    ]
    return paths, notes
