"""The project's served recommendations, measured through the code the service runs.

The trainer fits and exports a real bundle (into a temporary directory, no Redis), the bundle is
opened with :class:`artifacts.bundle.Bundle` (checksums verified), wrapped in the service's
:class:`artifacts.catalog.Catalog`, and every test customer is answered by
:func:`artifacts.ranking.for_you` with their batch profile from the bundle (None for a customer
without history, who gets the popular list, as the service answers an unknown customer): the
"for you" rule (bought items come back only when repurchasable) and the customer's consent
(no sensitive items without it; popular items for a customer who opted out).

The market of a request is the customer's storefront in the test period when the bundle knows
it, else the profile's market, else none: the precedence of ``service/recommender.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from artifacts.bundle import Bundle, BundleManifest
from artifacts.catalog import Catalog
from artifacts.ranking import for_you
from training.config import TrainConfig
from training.evaluation.baselines import Answers
from training.evaluation.split import Split
from training.pipeline import Fitted, export, fit


def answers_from_bundle(path: Path, split: Split, n: int) -> Answers:
    """Answer every test customer of ``split`` from the bundle at ``path``."""
    bundle = Bundle.open(path)
    catalog = Catalog(bundle)
    wanted = set(split.actual)
    profiles = {r.user_id: r.profile for r in bundle.profile_records() if r.user_id in wanted}
    lists: dict[str, list[str]] = {}
    personal: set[str] = set()
    for user in split.users:
        profile = profiles.get(user)
        market = split.markets.get(user)
        if market is None or not catalog.knows_market(market):
            market = (profile.market if profile is not None and profile.market
                      and catalog.knows_market(profile.market) else None)
        picked = for_you(catalog, profile, n=n, market=market)
        lists[user] = [item.item_id for item in picked.items]
        if profile is not None and picked.source == "personal":
            personal.add(user)
    return Answers(lists, personal)


def served_answers(split: Split, config: TrainConfig, n: int, *, fitted: Fitted | None = None,
                   progress: bool = False) -> tuple[Answers, BundleManifest]:
    """Train (or reuse ``fitted``, which must come from ``split.train`` and ``config``'s fit
    fields), export a bundle with the test customers' profiles and answer from it."""
    fitted = fitted or fit(split.train, config, progress=progress)
    users = [u for u in split.users if split.with_history(u)]
    with tempfile.TemporaryDirectory(prefix="reco-eval-") as tmp:
        path, manifest = export(fitted, config, tmp, profile_users=users, progress=progress)
        return answers_from_bundle(path, split, n), manifest
