"""Per-customer profile schema and the Redis key scheme.

Values are msgpack-encoded msgspec Structs. Schema evolution rule: new fields always get a
default and existing fields never change type, so a reader of any version decodes a profile
written by any other.

Keys carry the schema version and a hash tag per customer, so that all of one customer's keys
land in one Redis Cluster slot::

    <prefix>:v1:{<user_id>}:batch            BatchProfile written by the trainer
    <prefix>:v1:{<user_id>}:live             LiveState written by live events (TTL)
    <prefix>:v1:{<user_id>}:sent             SentLog: batch picks mailed, per campaign (TTL)
    <prefix>:v1:{sess:<session_id>}:session  LiveState of an anonymous session (TTL)
    <prefix>:v1:erasures                     sorted set: erased customer id -> erasure time

Live state is merged with the batch profile at read time, so a retrain (which rewrites only
``:batch``) never loses what happened since.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Callable, Sequence
from math import copysign

import msgspec
import numpy as np

KEY_SCHEMA = "v1"


class SizePreference(msgspec.Struct, array_like=True, frozen=True):
    """Size evidence of a customer in one size system, aggregated by the trainer.

    ``weight`` is the recency-weighted number of purchases of ``size`` with this ``kind``:
    ``kept`` (kept, fitted or no feedback), ``small`` (too small: said so, or exchanged for a
    larger size) or ``large``. Probable gifts are left out. Read by :mod:`artifacts.sizing`.
    """

    system: str
    size: str
    kind: str
    weight: float


#: Source names of candidate lists, by code (stored as one byte per item in :class:`Ranked`).
#: Append only: a code, once written to Redis, keeps its meaning.
CANDIDATE_SOURCES: tuple[str, ...] = ("also_bought", "personal", "popular", "buy_again",
                                      "variant", "personal_live")
_SOURCE_CODE = {name: code for code, name in enumerate(CANDIDATE_SOURCES)}
#: The packed columns are read with the stdlib (cheaper than numpy for a few values) where the
#: platform's C types match their little-endian int32 / float32.
_NATIVE = (sys.byteorder == "little" and array.array("i").itemsize == 4
           and array.array("f").itemsize == 4)


class Ranked(msgspec.Struct, array_like=True, frozen=True):
    """A ranked item list packed into four byte strings (one column each), best first.

    A page view decodes it as four objects instead of 300 (ids, scores and sources of 100
    candidates): about 40 us less per request. ``idx`` holds each item's index in the
    vocabulary of the profile's ``bundle_version`` (-1: unknown there), so a service serving
    that bundle never looks ids up; any other bundle maps ``ids`` through its own vocabulary.
    """

    ids: bytes
    """Item ids joined by ``\\n`` (ids never contain one, see :mod:`artifacts.ids`)."""
    idx: bytes
    """int32, little-endian."""
    scores: bytes
    """float32, little-endian."""
    sources: bytes
    """One code per item into :data:`CANDIDATE_SOURCES`."""

    @classmethod
    def pack(cls, ids: Sequence[str], idx: np.ndarray, scores: np.ndarray, codes: np.ndarray,
             names: Sequence[str] = CANDIDATE_SOURCES) -> Ranked:
        """Pack parallel columns; ``codes`` index ``names``, mapped onto
        :data:`CANDIDATE_SOURCES` (KeyError for a name it does not hold)."""
        remap = np.fromiter((_SOURCE_CODE[name] for name in names), np.uint8, len(names))
        return cls(ids="\n".join(ids).encode(), idx=np.asarray(idx, "<i4").tobytes(),
                   scores=np.asarray(scores, "<f4").tobytes(),
                   sources=remap[np.asarray(codes, np.intp)].tobytes())

    def id_list(self) -> list[str]:
        return self.ids.decode().split("\n") if self.ids else []


_HALF_EVEN, _HALF_EVEN_LIMIT = 6755399441055744.0, 2.0**51


def round5(x: float) -> float:
    """``numpy.round(x, 5)`` of one float, without numpy's per-call cost: what answers show
    for scores stored as float32 (the trainer's packed candidates, neighbour lists). numpy
    multiplies by 10**5, rounds half to even and divides again; so does this (adding and
    taking away 1.5 * 2**52 rounds a float below 2**51 half to even), signed zeros,
    infinities and NaN included."""
    y = x * 100000.0
    if -_HALF_EVEN_LIMIT < y < _HALF_EVEN_LIMIT:
        r = (y + _HALF_EVEN) - _HALF_EVEN
        return r / 100000.0 if r else copysign(0.0, y)
    return y / 100000.0 if y - y != 0.0 else round(y) / 100000.0  # inf, nan; huge


def int32_column(packed: bytes) -> Sequence[int]:
    """A packed little-endian int32 column as a sequence of Python ints, converted as read."""
    if _NATIVE:
        return memoryview(packed).cast("i")
    return np.frombuffer(packed, "<i4").tolist()


def float32_column(packed: bytes) -> Sequence[float]:
    """A packed little-endian float32 column as a sequence of Python floats, converted as
    read; :func:`round5` them for answers."""
    if _NATIVE:
        return memoryview(packed).cast("f")
    return np.frombuffer(packed, "<f4").tolist()


def _scores(packed: bytes) -> list[float]:
    """float32 scores as Python floats rounded to 5 digits (what answers show)."""
    return np.frombuffer(packed, "<f4").astype(np.float64).round(5).tolist()


class BatchProfile(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the trainer knows about one customer, tagged with the bundle that produced it.

    The precomputed "for you" list (best first; bought items appear only when the bundle marks
    them repurchasable, with source ``buy_again``) makes a page view a lookup and a filter, not
    a model evaluation. The trainer writes it packed in ``ranked``; profiles built in memory
    (live fold-in, picks) use the plain lists ``candidates``/``scores``/``sources``. Read it
    through :meth:`candidate_columns` (hot paths) or :meth:`candidate_ids` and friends, which
    accept either form.
    """

    bundle_version: str
    market: str | None = None
    candidates: list[str] = []
    scores: list[float] = []
    sources: list[str] = []
    purchased: list[str] = []
    factors: bytes = b""
    n_purchases: int = 0
    last_purchase: str | None = None
    segments: list[str] = []
    consent_personalisation: bool | None = None
    consent_sensitive: bool | None = None
    sizes: list[SizePreference] = []
    """Size evidence per size system (see :class:`SizePreference`), for the preselected size."""
    ranked: Ranked | None = None
    """The candidates packed (see :class:`Ranked`); when set, the three lists are empty."""

    def candidate_columns(self, version: str, index: Callable[[str], int | None]
                          ) -> tuple[list[int], list[float], list[str]]:
        """(item indices, scores, sources) of the candidates, best first, for a catalogue of
        bundle ``version`` whose vocabulary lookup is ``index``; an item that catalogue does
        not know has index -1. Cheapest when ``version`` is the profile's own."""
        ranked = self.ranked
        if ranked is None:
            return ([-1 if i is None else i for i in map(index, self.candidates)],
                    self.scores, self.sources)
        if version == self.bundle_version:
            idx = np.frombuffer(ranked.idx, "<i4").tolist()
        else:
            idx = [-1 if i is None else i for i in map(index, ranked.id_list())]
        names = CANDIDATE_SOURCES
        return (idx, _scores(ranked.scores),
                [names[c] for c in ranked.sources])

    def candidate_indices(self, version: str, index: Callable[[str], int | None]
                          ) -> Sequence[int]:
        """The item indices of :meth:`candidate_columns` alone: a caller that keeps a few
        candidates reads their scores and sources with :meth:`candidates_at`, rather than
        converting all of them (a page view keeps about 12 of 100). For the profile's own
        bundle this is a view of the packed column: nothing is converted until read."""
        ranked = self.ranked
        if ranked is None:
            return [-1 if i is None else i for i in map(index, self.candidates)]
        if version == self.bundle_version:
            return int32_column(ranked.idx)
        return [-1 if i is None else i for i in map(index, ranked.id_list())]

    def candidates_at(self, positions: Sequence[int]) -> tuple[list[float], list[str]]:
        """(scores, sources) of the candidates at ``positions``, as :meth:`candidate_columns`
        gives them (scores rounded to 5 digits)."""
        ranked = self.ranked
        if ranked is None:
            return [self.scores[k] for k in positions], [self.sources[k] for k in positions]
        scores, codes, names = float32_column(ranked.scores), ranked.sources, CANDIDATE_SOURCES
        return ([round5(scores[k]) for k in positions],
                [names[codes[k]] for k in positions])

    def candidate_ids(self) -> list[str]:
        return self.ranked.id_list() if self.ranked is not None else self.candidates

    def candidate_scores(self) -> list[float]:
        if self.ranked is None:
            return self.scores
        return _scores(self.ranked.scores)

    def candidate_sources(self) -> list[str]:
        if self.ranked is None:
            return self.sources
        return [CANDIDATE_SOURCES[c] for c in self.ranked.sources]

    def with_candidates(self, ids: list[str], scores: list[float],
                        sources: list[str]) -> BatchProfile:
        """A copy whose candidates are these plain lists (``ranked`` cleared)."""
        return msgspec.structs.replace(self, candidates=ids, scores=scores, sources=sources,
                                       ranked=None)

    def factor_vector(self) -> np.ndarray | None:
        """The ALS user vector (float32), or ``None`` when the trainer did not store one."""
        if not self.factors:
            return None
        return np.frombuffer(self.factors, dtype=np.float32)


class LiveItem(msgspec.Struct, array_like=True, frozen=True):
    item_id: str
    ts: float  # epoch seconds


class SizeSignal(msgspec.Struct, array_like=True, frozen=True):
    item_id: str
    size: str
    kind: str  # event type that carried it: view | cart | purchase | return
    ts: float


class LiveState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a customer or session did since training, newest first, each list capped.

    ``event_ids`` (id, time) are the recently applied events, kept in the same value so that
    applying a batch and recording it as applied is one atomic write (idempotency).
    ``candidates``/``scores`` hold the "for you" list folded in from live purchases (ALS closed
    form) when there are purchases newer than the training data; ``folded_at`` is the time of
    the newest purchase they include.
    """

    viewed: list[LiveItem] = []
    purchased: list[LiveItem] = []
    returned: list[LiveItem] = []
    cart: list[LiveItem] = []
    sizes: list[SizeSignal] = []
    market: str | None = None
    event_ids: list[tuple[str, float]] = []
    sessions: list[str] = []
    user_id: str | None = None
    candidates: list[str] = []
    scores: list[float] = []
    folded_at: float = 0.0
    updated: float = 0.0


class SentMail(msgspec.Struct, array_like=True, frozen=True):
    ts: float
    items: list[str]


class SentLog(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Batch picks mailed to one customer: per campaign family, newest mail first."""

    campaigns: dict[str, list[SentMail]] = {}


class ProfileRecord(msgspec.Struct, array_like=True):
    """A batch profile with its customer id, as stored in a bundle's profile files."""

    user_id: str
    profile: BatchProfile


class KeyScheme(msgspec.Struct, frozen=True):
    """Builds every Redis key the system uses; the only place key names are spelt out."""

    prefix: str = "reco"

    def batch(self, user_id: str) -> str:
        return f"{self.prefix}:{KEY_SCHEMA}:{{{user_id}}}:batch"

    def live(self, user_id: str) -> str:
        return f"{self.prefix}:{KEY_SCHEMA}:{{{user_id}}}:live"

    def session(self, session_id: str) -> str:
        return f"{self.prefix}:{KEY_SCHEMA}:{{sess:{session_id}}}:session"

    def sent(self, user_id: str) -> str:
        return f"{self.prefix}:{KEY_SCHEMA}:{{{user_id}}}:sent"

    def user_keys(self, user_id: str) -> list[str]:
        """Every key held for one customer (one cluster slot); sessions are linked separately."""
        return [self.batch(user_id), self.live(user_id), self.sent(user_id)]

    def erasures(self) -> str:
        return f"{self.prefix}:{KEY_SCHEMA}:erasures"

    def user_pattern(self, user_id: str) -> str:
        """Glob matching every key held for one customer."""
        return f"{self.prefix}:{KEY_SCHEMA}:{{{user_id}}}:*"

    def all_pattern(self) -> str:
        """Glob matching every key under this prefix."""
        return f"{self.prefix}:*"


ENCODER = msgspec.msgpack.Encoder()
BATCH_DECODER = msgspec.msgpack.Decoder(BatchProfile)
LIVE_DECODER = msgspec.msgpack.Decoder(LiveState)
SENT_DECODER = msgspec.msgpack.Decoder(SentLog)


def encode_profile(profile: BatchProfile) -> bytes:
    return ENCODER.encode(profile)


def decode_batch(raw: bytes) -> BatchProfile:
    return BATCH_DECODER.decode(raw)


def decode_live(raw: bytes) -> LiveState:
    return LIVE_DECODER.decode(raw)


def decode_sent(raw: bytes) -> SentLog:
    return SENT_DECODER.decode(raw)
