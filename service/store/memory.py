"""Embedded in-process profile store: for a one-process demo and for tests, not production.

Values live in a dict, encoded with the same msgpack codec as in Redis, and are lost when the
process exits. TTLs are not enforced (nothing lives long enough for them to matter).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from artifacts.profiles import (ENCODER, BatchProfile, KeyScheme, LiveState, ProfileRecord,
                                decode_batch, decode_live, decode_sent)
from service.store.base import LiveMutation, RawUser, SentMutation, UserRecord


class MemoryProfileStore:
    name = "memory"

    def __init__(self, records: Iterable[ProfileRecord] = (), *, prefix: str = "reco"):
        self.keys = KeyScheme(prefix)
        self._data: dict[str, bytes] = {}
        self._erased: dict[str, float] = {}
        for record in records:
            self._data[self.keys.batch(record.user_id)] = ENCODER.encode(record.profile)

    def __len__(self) -> int:
        return len(self._data)

    def keys_held(self) -> list[str]:
        return sorted(self._data)

    def _get(self, key: str, decode):
        raw = self._data.get(key)
        return None if raw is None else decode(raw)

    async def get_batch(self, user_id: str) -> BatchProfile | None:
        return self._get(self.keys.batch(user_id), decode_batch)

    async def get_user(self, user_id: str) -> UserRecord:
        return self.decode_user((await self.read_user(user_id)).values)

    async def read_user(self, user_id: str) -> RawUser:
        """The values; no memo (nothing here tells when a value changes)."""
        return RawUser([self._data.get(key) for key in self.keys.user_keys(user_id)], None)

    def decode_user(self, values: list[bytes | None]) -> UserRecord:
        batch, live, sent = values
        return UserRecord(None if batch is None else decode_batch(batch),
                          None if live is None else decode_live(live),
                          None if sent is None else decode_sent(sent))

    async def get_users(self, user_ids: Sequence[str]) -> list[UserRecord]:
        return [await self.get_user(u) for u in user_ids]

    async def get_session(self, session_id: str) -> LiveState | None:
        return self._get(self.keys.session(session_id), decode_live)

    async def put_batch(self, user_id: str, profile: BatchProfile) -> None:
        self._data[self.keys.batch(user_id)] = ENCODER.encode(profile)

    async def update_live(self, mutations: dict[str, LiveMutation], ttl_s: dict[str, float]) -> None:
        for key, mutate in mutations.items():
            new = mutate(self._get(key, decode_live))
            if new is not None:
                self._data[key] = ENCODER.encode(new)

    async def update_sent(self, mutations: dict[str, SentMutation], ttl_s: float) -> None:
        for user_id, mutate in mutations.items():
            key = self.keys.sent(user_id)
            new = mutate(self._get(key, decode_sent))
            if new is not None:
                self._data[key] = ENCODER.encode(new)

    async def delete_sessions(self, session_ids: Sequence[str]) -> int:
        return sum(self._data.pop(self.keys.session(s), None) is not None for s in session_ids)

    async def erase_user(self, user_id: str, now: float) -> int:
        self._erased[user_id] = now  # listed first, as in Redis
        live: LiveState | None = self._get(self.keys.live(user_id), decode_live)
        keys = self.keys.user_keys(user_id)
        keys += [self.keys.session(s) for s in (live.sessions if live else [])]
        return sum(self._data.pop(k, None) is not None for k in keys)

    async def erased_users(self) -> list[str]:
        return sorted(self._erased)

    async def erased_among(self, user_ids: Sequence[str]) -> set[str]:
        return {u for u in user_ids if u in self._erased}

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
