"""The training run as a whole: handing the input tables over (``consume``), and a run
stopped part way."""

import copy
import os
import shutil
from contextlib import contextmanager

import pytest

from artifacts.bundle import CURRENT_LINK, Bundle, publish, resolve
from training.config import TrainConfig
from training.pipeline import train
from training.stages import Stages, Stopped


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


def _interrupt_at(name):
    """A :class:`Stages` watch that presses Ctrl-C as stage ``name`` begins."""
    @contextmanager
    def watch(stage):
        if stage == name:
            raise KeyboardInterrupt
        yield
    return Stages(watch=watch)


@pytest.mark.parametrize("stage", ["item_item", "candidates_and_export", "profiles_to_redis",
                                   "publish"])
def test_a_stopped_run_removes_its_bundle_and_says_what_stays(
        shop, demo_bundle_root, stage, tmp_path, redis_url, redis_prefix, raw_redis):
    """Stopped at any stage, even with the bundle committed and every profile in Redis, the
    run leaves the bundles root as it found it; profiles pushed stay, and it says so."""
    out = tmp_path / "bundles"
    serving = resolve(demo_bundle_root).name
    shutil.copytree(resolve(demo_bundle_root), out / serving)
    publish(out, serving)
    with pytest.raises(KeyboardInterrupt) as stopped:
        train(shop, TrainConfig(factors=8, iterations=3, candidates=30), out,
              redis_url=redis_url, redis_prefix=redis_prefix, progress=False,
              stages=_interrupt_at(stage))
    assert sorted(p.name for p in out.iterdir()) == sorted([serving, CURRENT_LINK])
    assert os.readlink(out / CURRENT_LINK) == serving
    exc = stopped.value
    assert isinstance(exc, Stopped)
    committed = stage in ("profiles_to_redis", "publish")
    assert (exc.removed == out / exc.version) if committed else exc.removed is None
    pushed = len(list(raw_redis.scan_iter(f"{redis_prefix}:*", count=1000)))
    assert exc.profiles_pushed == pushed == (len(shop.purchases["user_id"].unique())
                                             if stage == "publish" else 0)
    assert str(exc).startswith(f"during {stage}: ")
    assert str(exc).endswith("'current' unchanged" if not pushed else
                             "push-profiles rewrites those of current)")
