"""Profile stores: one interface, a Redis backend (one server or a Redis Cluster) and an
embedded in-process backend.

All pass the same contract suite (``tests/test_profile_store.py``), Redis both on one server
and on a local 3-master cluster.
"""

from service.store.base import ProfileStore, StoreUnavailable
from service.store.memory import MemoryProfileStore
from service.store.redis import RedisProfileStore

__all__ = ["MemoryProfileStore", "ProfileStore", "RedisProfileStore", "StoreUnavailable"]
