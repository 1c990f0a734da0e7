"""The training run as a whole: handing the input tables over (``consume``)."""

import copy

from artifacts.bundle import Bundle
from training.config import TrainConfig
from training.pipeline import train


def test_a_consumed_input_is_emptied_once_indexed_and_trains_the_same_bundle(
        shop, demo_bundle, tmp_path):
    """``consume=True`` empties the purchases (and events) once indexed, and every later stage
    gets on without them: the profiles are those of the session's demo bundle, trained on the
    same shop and config without handing it over."""
    data = copy.copy(shop)  # the shop fixture is shared: only this copy's tables are emptied
    result = train(data, TrainConfig(factors=16, iterations=5, candidates=40), tmp_path,
                   progress=False, consume=True)
    assert data.purchases.height == 0 and data.purchases.columns == shop.purchases.columns
    assert data.events is None or data.events.height == 0
    assert shop.purchases.height > 0

    def comparable(bundle):
        return {r.user_id: (r.profile.ranked.ids, r.profile.ranked.scores, r.profile.sizes,
                            r.profile.segments, r.profile.purchased)
                for r in bundle.profile_records()}

    trained = Bundle.open(result.path)
    assert trained.manifest.counts == demo_bundle.manifest.counts
    assert comparable(trained) == comparable(demo_bundle)
