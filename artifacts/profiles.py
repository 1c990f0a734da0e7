"""Per-customer profile schema and the Redis key scheme.

Values are msgpack-encoded msgspec Structs. Schema evolution rule: new fields always get a
default and existing fields never change type, so a reader of any version decodes a profile
written by any other.

Keys carry the schema version and a hash tag per customer, so that all of one customer's keys
land in one Redis Cluster slot::

    <prefix>:v1:{<user_id>}:batch     BatchProfile written by the trainer
"""

from __future__ import annotations

import msgspec
import numpy as np

KEY_SCHEMA = "v1"


class BatchProfile(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the trainer knows about one customer, tagged with the bundle that produced it.

    ``candidates`` is the precomputed "for you" list (best first, already-bought items removed),
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

    def factor_vector(self) -> np.ndarray | None:
        """The ALS user vector (float32), or ``None`` when the trainer did not store one."""
        if not self.factors:
            return None
        return np.frombuffer(self.factors, dtype=np.float32)


class ProfileRecord(msgspec.Struct, array_like=True):
    """A batch profile with its customer id, as stored in a bundle's profile files."""

    user_id: str
    profile: BatchProfile


class KeyScheme(msgspec.Struct, frozen=True):
    """Builds every Redis key the system uses; the only place key names are spelt out."""

    prefix: str = "reco"

    def batch(self, user_id: str) -> str:
        return f"{self.prefix}:{KEY_SCHEMA}:{{{user_id}}}:batch"

    def user_pattern(self, user_id: str) -> str:
        """Glob matching every key held for one customer."""
        return f"{self.prefix}:{KEY_SCHEMA}:{{{user_id}}}:*"

    def all_pattern(self) -> str:
        """Glob matching every key under this prefix."""
        return f"{self.prefix}:*"


ENCODER = msgspec.msgpack.Encoder()
BATCH_DECODER = msgspec.msgpack.Decoder(BatchProfile)


def encode_profile(profile: BatchProfile) -> bytes:
    return ENCODER.encode(profile)


def decode_batch(raw: bytes) -> BatchProfile:
    return BATCH_DECODER.decode(raw)
