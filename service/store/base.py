"""The profile store interface the recommender depends on."""

from __future__ import annotations

from typing import Protocol

from artifacts.profiles import BatchProfile


class StoreUnavailable(Exception):
    """The store cannot answer right now; callers degrade to non-personal answers."""


class ProfileStore(Protocol):
    """Reads (and, for seeding and tests, writes) per-customer profiles.

    ``get_batch`` returns ``None`` for a customer the store does not hold and raises
    :class:`StoreUnavailable` when the backend cannot be reached - never anything else.
    """

    name: str

    async def get_batch(self, user_id: str) -> BatchProfile | None: ...

    async def put_batch(self, user_id: str, profile: BatchProfile) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
