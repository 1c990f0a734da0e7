"""Batch profile + live state -> the profile a request is answered from.

The batch part comes from the last training run; the live part from events since. Purchases of
both are excluded; when the customer bought something newer than the training data and a
folded-in list exists that covers it, that list leads and the batch list follows.
"""

from __future__ import annotations

from artifacts.catalog import Catalog
from artifacts.profiles import BatchProfile, LiveState

FOLDED = "personal_live"


def merged_profile(batch: BatchProfile | None, live: LiveState | None, *,
                   trained_until: float, catalog: Catalog) -> BatchProfile | None:
    """The effective profile, or ``None`` when neither part knows the customer.

    The market of the latest events replaces the batch profile's when ``catalog`` sells in it;
    one it does not know (a typo, a market opened since training) is left aside."""
    market = live.market if live is not None and live.market and \
        catalog.knows_market(live.market) else None
    if live is None or not (live.purchased or live.candidates or market):
        return batch
    base = batch or BatchProfile(bundle_version=catalog.version)
    purchased = list(dict.fromkeys([*(p.item_id for p in live.purchased), *base.purchased]))
    candidates, scores, sources = (base.candidate_ids(), base.candidate_scores(),
                                   base.candidate_sources())
    newest = max((p.ts for p in live.purchased if p.ts > trained_until), default=None)
    if newest is not None and live.candidates and live.folded_at >= newest:
        seen = set(live.candidates)
        rest = [(c, s, src) for c, s, src in zip(candidates, scores, sources) if c not in seen]
        candidates = list(live.candidates) + [c for c, _, _ in rest]
        scores = list(live.scores) + [s for _, s, _ in rest]
        sources = [FOLDED] * len(live.candidates) + [src for _, _, src in rest]
    return BatchProfile(
        bundle_version=base.bundle_version, market=market or base.market,
        candidates=candidates, scores=scores, sources=sources, purchased=purchased,
        factors=base.factors, n_purchases=base.n_purchases + len(live.purchased),
        last_purchase=base.last_purchase, segments=base.segments, sizes=base.sizes,
        consent_personalisation=base.consent_personalisation,
        consent_sensitive=base.consent_sensitive)
