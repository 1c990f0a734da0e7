"""Wire types of the HTTP API (msgspec Structs), shared by handlers and the OpenAPI schema."""

from __future__ import annotations

import msgspec

from artifacts.ranking import RecommendedItem

__all__ = ["ErrorBody", "Health", "Readiness", "RecommendedItem", "Recommendations"]


class Recommendations(msgspec.Struct, kw_only=True):
    """An answer of a recommendation endpoint.

    ``source`` names the main source of the list; ``degraded`` is true when a step could not
    run (e.g. the profile store is unreachable) and the list fell back to a lesser source.
    """

    items: list[RecommendedItem]
    source: str
    degraded: bool = False
    market: str | None = None
    bundle_version: str
    user_id: str | None = None
    item_id: str | None = None
    notes: list[str] = []


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct, kw_only=True):
    ready: bool
    bundle_version: str | None
    bundle_created_at: str | None
    store: str
    store_reachable: bool


class ErrorBody(msgspec.Struct, kw_only=True):
    status_code: int
    error: str
    detail: str
    fields: list[dict] = []
