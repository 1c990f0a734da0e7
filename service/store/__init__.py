"""Profile stores: one interface, a Redis backend and an embedded in-process backend.

Both pass the same contract suite (``tests/test_profile_store.py``).
"""

from service.store.base import ProfileStore, StoreUnavailable
from service.store.memory import MemoryProfileStore
from service.store.redis import RedisProfileStore

__all__ = ["MemoryProfileStore", "ProfileStore", "RedisProfileStore", "StoreUnavailable"]
