"""Embedded in-process profile store: for a one-process demo and for tests, not production.

Profiles live in a dict of encoded values (so they go through the same msgpack codec as Redis)
and are lost when the process exits.
"""

from __future__ import annotations

from collections.abc import Iterable

from artifacts.profiles import BatchProfile, KeyScheme, ProfileRecord, decode_batch, encode_profile


class MemoryProfileStore:
    name = "memory"

    def __init__(self, records: Iterable[ProfileRecord] = (), *, prefix: str = "reco"):
        self.keys = KeyScheme(prefix)
        self._data: dict[str, bytes] = {}
        for record in records:
            self._data[self.keys.batch(record.user_id)] = encode_profile(record.profile)

    def __len__(self) -> int:
        return len(self._data)

    async def get_batch(self, user_id: str) -> BatchProfile | None:
        raw = self._data.get(self.keys.batch(user_id))
        return None if raw is None else decode_batch(raw)

    async def put_batch(self, user_id: str, profile: BatchProfile) -> None:
        self._data[self.keys.batch(user_id)] = encode_profile(profile)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
