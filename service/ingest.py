"""Applying live events and session logins to the profile store.

Each subject (customer or anonymous session) is updated atomically and idempotently by one
compare-and-set of its live state (see :mod:`service.store`). Customers who bought something
get a fresh folded-in "for you" list in the same request: one FAISS batch search for all of
them, in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import msgspec

from artifacts.profiles import LiveItem, LiveState
from service.events import IngestResult, LiveLimits, TimedEvent, apply_events
from service.foldin import FoldIn
from service.recommender import Recommender
from service.store.base import LiveMutation

MAX_LINKED_SESSIONS = 50  # per customer; an older linked session is deleted (see _link)
FOLD_CANDIDATES = 100


class IdentifyResult(msgspec.Struct, kw_only=True):
    session_id: str
    user_id: str
    carried: dict[str, int]
    """How many signals of each kind the session passed on to the customer."""


def _merge_items(mine: list[LiveItem], theirs: list[LiveItem], cap: int) -> list[LiveItem]:
    newest: dict[str, LiveItem] = {}
    for item in [*mine, *theirs]:
        if item.item_id not in newest or item.ts > newest[item.item_id].ts:
            newest[item.item_id] = item
    return sorted(newest.values(), key=lambda x: -x.ts)[:cap]


class EventIngestor:
    """Applies event batches and logins; holds no state of its own besides the fold-in cache."""

    def __init__(self, recommender: Recommender, *, user_ttl_s: float, session_ttl_s: float,
                 limits: LiveLimits | None = None):
        self.recommender = recommender
        self.user_ttl_s = user_ttl_s
        self.session_ttl_s = session_ttl_s
        self.limits = limits or LiveLimits()
        self._foldin: FoldIn | None = None

    @property
    def store(self):
        return self.recommender.store

    def foldin(self) -> FoldIn:
        catalog = self.recommender.catalog
        if self._foldin is None or self._foldin.catalog is not catalog:
            self._foldin = FoldIn(catalog)
        return self._foldin

    async def ingest(self, events: list[TimedEvent], now: float) -> IngestResult:
        keys = self.store.keys
        groups: dict[str, list[TimedEvent]] = defaultdict(list)
        links: dict[str, set[str]] = defaultdict(set)
        ttl: dict[str, float] = {}
        owner: dict[str, str] = {}
        for timed in events:
            e = timed.event
            if e.user_id is not None:
                key = keys.live(e.user_id)
                ttl[key], owner[key] = self.user_ttl_s, e.user_id
                if e.session_id is not None:
                    links[key].add(e.session_id)
            else:
                key = keys.session(e.session_id)
                ttl[key] = self.session_ttl_s
            groups[key].append(timed)
        outcome: dict[str, tuple[int, bool]] = {}
        unlinked: dict[str, list[str]] = {}  # customer key -> sessions that fell off its list

        def mutation(key: str) -> LiveMutation:
            def mutate(old: LiveState | None) -> LiveState | None:
                unlinked.pop(key, None)  # called again when a concurrent write won
                new, applied, bought = apply_events(old, groups[key], now, self.limits)
                # purchases newer than the folded-in list: an earlier fold-in failed (its
                # batch was a 503, and the resend is all duplicates); fold in again
                behind = old is not None and any(p.ts > old.folded_at for p in old.purchased)
                outcome[key] = (applied, bought or behind)
                extra = links.get(key, set()) - set((new or old or LiveState()).sessions)
                if extra:
                    base = new or old or LiveState()
                    sessions, unlinked[key] = _link(sorted(extra), base.sessions)
                    new = msgspec.structs.replace(base, sessions=sessions, updated=now)
                return new
            return mutate

        await self.store.update_live({key: mutation(key) for key in groups}, ttl)
        dropped = [s for sessions in unlinked.values() for s in sessions]
        # a session an event names with its customer is theirs, as after a login: its size
        # and page views read the customer's state
        marks = {keys.session(s): _mark(owner[key], now) for key, sessions in links.items()
                 for s in sorted(sessions) if s not in dropped}
        if marks:
            await self.store.update_live(marks, dict.fromkeys(marks, self.session_ttl_s))
        if dropped:
            await self.store.delete_sessions(dropped)
        accepted = sum(applied for applied, _ in outcome.values())
        buyers = [owner[key] for key, (_, bought) in outcome.items() if bought and key in owner]
        folded = await self.refold(buyers, now) if buyers else 0
        return IngestResult(accepted=accepted, duplicates=len(events) - accepted,
                            subjects=len(groups), folded=folded)

    async def refold(self, user_ids: list[str], now: float) -> int:
        """Recompute the folded-in "for you" list of customers from all their purchases."""
        catalog = self.recommender.catalog
        index = catalog.items.index
        records = await self.store.get_users(user_ids)
        histories, newest = [], []
        for record in records:
            live = record.live
            # a purchase returned afterwards says "not for me": it is not folded in
            returned = {x.item_id: x.ts for x in live.returned} if live else {}
            live_items = [p.item_id for p in live.purchased
                          if returned.get(p.item_id, -1.0) < p.ts] if live else []
            batch_items = [i for i in record.batch.purchased
                           if i not in returned] if record.batch else []
            ordered = list(dict.fromkeys([*live_items, *batch_items]))
            histories.append([i for i in map(index, ordered) if i is not None])
            newest.append(max((p.ts for p in record.live.purchased), default=0.0)
                          if record.live else 0.0)
        foldin = self.foldin()
        lists = await asyncio.to_thread(foldin.candidates, histories, FOLD_CANDIDATES)
        ids = catalog.ids
        keys = self.store.keys

        def mutation(items: list[int], scores: list[float], folded_at: float) -> LiveMutation:
            def mutate(old: LiveState | None) -> LiveState | None:
                if old is None or old.folded_at > folded_at:  # a newer fold-in came first
                    return None
                return msgspec.structs.replace(old, candidates=[ids[i] for i in items],
                                               scores=scores, folded_at=folded_at)
            return mutate

        mutations = {keys.live(u): mutation(items, scores, ts)
                     for u, (items, scores), ts in zip(user_ids, lists, newest)}
        await self.store.update_live(mutations, {k: self.user_ttl_s for k in mutations})
        return len(mutations)

    async def identify(self, session_id: str, user_id: str, now: float) -> IdentifyResult:
        """Link a session to the customer who logged in and carry its signals over."""
        session = await self.store.get_session(session_id) or LiveState()
        limits = self.limits
        carried = {"viewed": len(session.viewed), "cart": len(session.cart),
                   "purchased": len(session.purchased), "returned": len(session.returned),
                   "sizes": len(session.sizes)}

        unlinked: list[str] = []

        def into_user(old: LiveState | None) -> LiveState:
            mine = old or LiveState()
            sizes = sorted({(s.item_id, s.size, s.kind, s.ts): s
                            for s in [*mine.sizes, *session.sizes]}.values(), key=lambda s: -s.ts)
            sessions, unlinked[:] = _link([session_id], mine.sessions)
            return msgspec.structs.replace(
                mine,
                viewed=_merge_items(mine.viewed, session.viewed, limits.viewed),
                cart=_merge_items(mine.cart, session.cart, limits.cart),
                purchased=_merge_items(mine.purchased, session.purchased, limits.purchased),
                returned=_merge_items(mine.returned, session.returned, limits.returned),
                sizes=sizes[:limits.sizes], market=mine.market or session.market,
                sessions=sessions, updated=now)

        keys = self.store.keys
        await self.store.update_live(
            {keys.live(user_id): into_user, keys.session(session_id): _mark(user_id, now)},
            {keys.live(user_id): self.user_ttl_s, keys.session(session_id): self.session_ttl_s})
        if unlinked:
            await self.store.delete_sessions(unlinked)
        if session.purchased:
            await self.refold([user_id], now)
        return IdentifyResult(session_id=session_id, user_id=user_id, carried=carried)


def _link(new: list[str], linked: list[str]) -> tuple[list[str], list[str]]:
    """(the customer's linked sessions with ``new`` first, at most
    :data:`MAX_LINKED_SESSIONS`; the older ones that no longer fit). Erasure deletes the
    sessions on the list, so one that falls off it is deleted at once: no session that was
    ever linked to a customer outlives their erasure. Its signals were carried over to the
    customer when it was linked."""
    sessions = list(dict.fromkeys([*new, *linked]))
    return sessions[:MAX_LINKED_SESSIONS], sessions[MAX_LINKED_SESSIONS:]


def _mark(user_id: str, now: float) -> LiveMutation:
    """A live mutation: the session belongs to ``user_id`` (created if absent; written
    either way, which renews its expiry)."""
    def mutate(old: LiveState | None) -> LiveState:
        return msgspec.structs.replace(old or LiveState(), user_id=user_id, updated=now)
    return mutate
