"""Batch picks for email builders: many customers at once, no repeats, frequency caps.

For a chunk of customers: one pipelined Redis read of everything held for them, one FAISS batch
search for those whose purchases are newer than their folded-in list, then per customer the
same selection as "for you" minus what earlier mails of the campaign family showed and minus
sensitive items without consent. With ``record``, the picks are appended to each customer's sent
log by compare-and-set, so the next run does not repeat them, and two runs at once cannot both
mail a customer past a cap or mail the same items: a log another run changed since it was read
is checked again, and a pick it no longer allows comes back empty and capped, not recorded.

Caps come from a config file (``RECO_PICKS_CONFIG``, JSON or TOML)::

    exclude_last_mails = 4                       # items of the last 4 mails are not repeated
    [default_cap]
    max_mails = 2                                # at most 2 mails ...
    window_days = 7                              # ... per 7 days
    [markets.DE]
    max_mails = 1
    window_days = 7
    [segments.lapsing]
    max_mails = 1
    window_days = 14

Every cap that applies to a customer (default, the mail's market, each of their segments) is
enforced: a customer is capped when any of them is reached, and gets an empty pick with the
reason. A cap's window may not be longer than the sent log is kept (``sent_ttl_days``). A
customer listed more than once in one request is picked once, on the first line; the others
get an empty pick saying so. A customer whose data was erased (``DELETE /v1/users/{id}``) and
who has done nothing since gets an empty pick saying so, and no sent log is written for them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from artifacts import ranking
from artifacts.catalog import Catalog
from artifacts.profiles import BatchProfile, SentLog, SentMail
from service.events import Id
from service.foldin import FoldIn
from service.merge import FOLDED, merged_profile
from service.recommender import Recommender
from service.schemas import RecommendedItem

MAX_PICK_USERS = 1000
DAY = 86_400.0
ERASED = "erased: the customer's data was deleted on request; not to be mailed"


class Cap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_mails: Annotated[int, Meta(ge=0)]
    window_days: Annotated[float, Meta(gt=0, le=3650)]


class PicksConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    default_cap: Cap = Cap(max_mails=2, window_days=7)
    markets: dict[str, Cap] = {}
    segments: dict[str, Cap] = {}
    exclude_last_mails: Annotated[int, Meta(ge=0, le=100)] = 4
    sent_ttl_days: Annotated[float, Meta(gt=0, le=3650)] = 90

    def __post_init__(self) -> None:
        for where, cap in self.caps():
            if cap.window_days > self.sent_ttl_days:
                raise ValueError(f"{where}: a window of {cap.window_days:g} days is longer than "
                                 f"the sent log is kept (sent_ttl_days = "
                                 f"{self.sent_ttl_days:g}): mails older than that are forgotten")

    def caps(self) -> list[tuple[str, Cap]]:
        """Every cap of the config, with where it is set."""
        return [("default_cap", self.default_cap),
                *((f"markets.{k}", c) for k, c in self.markets.items()),
                *((f"segments.{k}", c) for k, c in self.segments.items())]

    def mails_kept(self) -> int:
        """Mails per campaign family the sent log keeps: enough for every cap and for
        ``exclude_last_mails``."""
        return max(20, self.exclude_last_mails, *(c.max_mails for _, c in self.caps()))

    @classmethod
    def load(cls, path: str | None) -> PicksConfig:
        if not path:
            return cls()
        raw = Path(path).read_bytes()
        decode = msgspec.toml.decode if path.endswith(".toml") else msgspec.json.decode
        return decode(raw, type=cls)


class PickRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    users: Annotated[list[Id], Meta(min_length=1, max_length=MAX_PICK_USERS)]
    n: Annotated[int, Meta(ge=1, le=50)] = 6
    market: Id | None = None
    campaign: Id = "default"
    """Campaign family: repeats and caps are counted per family."""
    record: bool = False
    """Append these picks to the sent log (do this when the mail is actually sent)."""


class Pick(msgspec.Struct, kw_only=True):
    user_id: str
    items: list[RecommendedItem]
    source: str
    market: str | None = None
    capped: bool = False
    reason: str | None = None


class PickEngine:
    """Computes picks for chunks of customers from one recommender's catalogue and store."""

    def __init__(self, recommender: Recommender, config: PicksConfig):
        self.recommender = recommender
        self.config = config
        self._foldin: FoldIn | None = None

    def _foldin_for(self, catalog: Catalog) -> FoldIn:
        if self._foldin is None or self._foldin.catalog is not catalog:
            self._foldin = FoldIn(catalog)
        return self._foldin

    def _caps(self, market: str | None, segments: list[str]) -> list[Cap]:
        """Every cap that applies: the default, the market's, each segment's."""
        caps = [self.config.default_cap]
        if market in self.config.markets:
            caps.append(self.config.markets[market])
        caps += [self.config.segments[s] for s in segments if s in self.config.segments]
        return caps

    async def pick(self, user_ids: list[str], *, n: int, market: str | None, campaign: str,
                   record: bool, now: float) -> list[Pick]:
        catalog, trained_until = self.recommender.snapshot()
        if market is not None:
            self.recommender.resolve_market(catalog, market, None)  # 400 on an unknown market
        rows = await self.recommender.store.get_users(user_ids)
        profiles = [merged_profile(r.batch, r.live, trained_until=trained_until,
                                   catalog=catalog) for r in rows]
        await self._refold_stale(catalog, rows, profiles, trained_until)
        erased = await self.recommender.store.erased_among(
            [u for u, row in zip(user_ids, rows) if row == (None, None, None)])
        picks, records = [], {}
        seen: set[str] = set()
        for user_id, row, profile in zip(user_ids, rows, profiles):
            if user_id in seen:
                picks.append(Pick(user_id=user_id, items=[], source="none",
                                  reason="listed more than once: picked on the first line"))
                continue
            seen.add(user_id)
            if user_id in erased:
                picks.append(Pick(user_id=user_id, items=[], source="none", reason=ERASED))
                continue
            pick, shown = self._pick_one(catalog, user_id, row.sent, profile,
                                         n=n, market=market, campaign=campaign, now=now)
            picks.append(pick)
            if record and shown:
                records[user_id] = (row.sent, shown, pick.market,
                                    profile.segments if profile else [])
        if records:
            refused = await self._record(records, campaign, now)
            for k, pick in enumerate(picks):
                if pick.user_id in refused and pick.items:
                    picks[k] = Pick(user_id=pick.user_id, items=[], source="none",
                                    market=pick.market, capped=True, reason=refused[pick.user_id])
        return picks

    async def _record(self, records: dict, campaign: str, now: float) -> dict[str, str]:
        """Append each customer's picks to their sent log, atomically per customer. A log that
        changed since it was read (another run recorded a mail meanwhile) is checked again: a
        pick that a cap or the no-repeat rule would now refuse is not recorded. Returns those
        customers with the reason."""
        keep, refused = self.config.mails_kept(), {}

        def mutation(user_id: str):
            read, shown, market, segments = records[user_id]

            def mutate(current: SentLog | None) -> SentLog | None:
                refused.pop(user_id, None)  # called again when a concurrent write won
                mails = current.campaigns.get(campaign, []) if current else []
                if current != read:
                    reason = self._refusal(mails, shown, market, segments, campaign, now)
                    if reason is not None:
                        refused[user_id] = f"not recorded: another run mailed meanwhile ({reason})"
                        return None
                log = current or SentLog()
                return SentLog(campaigns={**log.campaigns,
                                          campaign: [SentMail(now, shown), *mails][:keep]})
            return mutate

        await self.recommender.store.update_sent({u: mutation(u) for u in records},
                                                 self.config.sent_ttl_days * DAY)
        return refused

    def _refusal(self, mails: list[SentMail], items: list[str], market: str | None,
                 segments: list[str], campaign: str, now: float) -> str | None:
        """Why ``items`` may not be mailed now after ``mails`` (a cap reached, an item of the
        last ``exclude_last_mails`` mails again), or ``None``."""
        for cap in self._caps(market, segments):
            recent = sum(1 for m in mails if m.ts > now - cap.window_days * DAY)
            if recent >= cap.max_mails:
                return (f"frequency cap: {recent} mail(s) of campaign {campaign!r} in the last "
                        f"{cap.window_days:g} days, at most {cap.max_mails} allowed")
        shown = {i for m in mails[:self.config.exclude_last_mails] for i in m.items}
        if not shown.isdisjoint(items):
            return "an item of its last mails again"
        return None

    async def _refold_stale(self, catalog: Catalog, rows, profiles, trained_until: float) -> None:
        """Fold in, with one batch search, customers whose live purchases are newer than their
        folded-in list (e.g. events arrived while the fold-in step was skipped)."""
        index = catalog.items.index
        stale = []
        for pos, row in enumerate(rows):
            live = row.live
            if live is None:
                continue
            newest = max((p.ts for p in live.purchased if p.ts > trained_until), default=None)
            if newest is not None and live.folded_at < newest:
                stale.append(pos)
        if not stale:
            return
        histories = [[i for i in map(index, profiles[pos].purchased) if i is not None]
                     for pos in stale]
        lists = await asyncio.to_thread(self._foldin_for(catalog).candidates, histories, 100)
        for pos, (items, scores) in zip(stale, lists):
            p = profiles[pos]
            folded = [catalog.ids[i] for i in items]
            profiles[pos] = p.with_candidates(folded + p.candidate_ids(),
                                              scores + p.candidate_scores(),
                                              [FOLDED] * len(folded) + p.candidate_sources())

    def _pick_one(self, catalog: Catalog, user_id: str, sent: SentLog | None,
                  profile: BatchProfile | None, *, n: int, market: str | None, campaign: str,
                  now: float) -> tuple[Pick, list[str]]:
        market_name = market or (profile.market if profile and profile.market and
                                 catalog.knows_market(profile.market) else None)
        mails = sent.campaigns.get(campaign, []) if sent else []
        reason = self._refusal(mails, [], market_name, profile.segments if profile else [],
                               campaign, now)
        if reason is not None:
            return Pick(user_id=user_id, items=[], source="none", market=market_name,
                        capped=True, reason=reason), []
        shown = [i for m in mails[:self.config.exclude_last_mails] for i in m.items]
        personal = profile is not None and profile.consent_personalisation is not False
        allow_sensitive = profile is not None and profile.consent_sensitive is True
        base = profile if personal else None
        exclude = [*(profile.purchased if profile else []), *shown]
        effective = msgspec.structs.replace(base or BatchProfile(bundle_version=catalog.version),
                                            purchased=exclude)
        chosen = ranking.for_user(catalog, effective, n=n, market=market_name,
                                  hide_sensitive=not allow_sensitive)
        items = chosen.items
        source = chosen.source if base is not None else ranking.popular_source(market_name)
        reason = None if personal or profile is None else "no consent to personalisation"
        return Pick(user_id=user_id, items=items, source=source, market=market_name,
                    reason=reason), [i.item_id for i in items]
