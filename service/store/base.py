"""The profile store interface the service depends on.

Backends: :class:`~service.store.redis.RedisProfileStore` (production: one server, or a Redis
Cluster for a ``redis+cluster://`` URL) and
:class:`~service.store.memory.MemoryProfileStore` (one-process demo, tests). Both pass the same
contract suite. Keys are built by :class:`artifacts.profiles.KeyScheme` only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from artifacts.profiles import BatchProfile, KeyScheme, LiveState, SentLog


class StoreUnavailable(Exception):
    """The store cannot answer right now; callers degrade to non-personal answers."""


class UserRecord(NamedTuple):
    """Everything held for one customer, read together (one cluster slot)."""

    batch: BatchProfile | None
    live: LiveState | None
    sent: SentLog | None


class RawUser(NamedTuple):
    """A customer's stored values as read, undecoded (batch, live, sent: ``bytes`` or ``None``),
    and a memo dict for what is computed from them, emptied as soon as the store learns that one
    of them changed (``None``: the store keeps none; see
    :meth:`service.store.near_cache.NearCache.memo`)."""

    values: list[bytes | None]
    memo: dict | None


#: Called with the current live state (None when absent); returns the new state, or None to
#: leave the value unchanged. May be called more than once when a concurrent writer wins.
LiveMutation = Callable[[LiveState | None], LiveState | None]
#: The same for a customer's sent log.
SentMutation = Callable[[SentLog | None], SentLog | None]


class ProfileStore(Protocol):
    """Reads and writes per-customer state.

    Every method raises :class:`StoreUnavailable` when the backend cannot be reached, never
    a backend-specific error; a missing customer is ``None``, not an error.
    """

    name: str
    keys: KeyScheme

    async def get_batch(self, user_id: str) -> BatchProfile | None: ...

    async def get_user(self, user_id: str) -> UserRecord: ...

    async def read_user(self, user_id: str) -> RawUser:
        """What :meth:`get_user` reads, before :meth:`decode_user`."""
        ...

    def decode_user(self, values: list[bytes | None]) -> UserRecord: ...

    async def get_users(self, user_ids: Sequence[str]) -> list[UserRecord]: ...

    async def get_session(self, session_id: str) -> LiveState | None: ...

    async def put_batch(self, user_id: str, profile: BatchProfile) -> None: ...

    async def update_live(self, mutations: dict[str, LiveMutation], ttl_s: dict[str, float]) -> None:
        """Atomically apply each mutation to the live state stored at its key (a key from
        ``KeyScheme.live`` or ``KeyScheme.session``), each key with its own TTL in seconds."""
        ...

    async def update_sent(self, mutations: dict[str, SentMutation], ttl_s: float) -> None:
        """Atomically apply each mutation to the sent log of its customer (keyed by customer
        id), with a TTL in seconds: two runs recording mails at once both see the other's."""
        ...

    async def delete_sessions(self, session_ids: Sequence[str]) -> int:
        """Delete the live state of these sessions; returns the number of keys deleted."""
        ...

    async def erase_user(self, user_id: str, now: float) -> int:
        """Delete every key of the customer and of the sessions linked to them, and record the
        id on the erasure list; returns the number of keys deleted."""
        ...

    async def erased_users(self) -> list[str]: ...

    async def erased_among(self, user_ids: Sequence[str]) -> set[str]:
        """Those of ``user_ids`` on the erasure list (one read, however many are asked)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
