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


class BatchProfile(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the trainer knows about one customer, tagged with the bundle that produced it.

    ``candidates`` is the precomputed "for you" list (best first; bought items appear only when
    the bundle marks them repurchasable, with source ``buy_again``),
    so a page view is a lookup and a filter, not a model evaluation.
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
