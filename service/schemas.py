"""Wire types of the HTTP API (msgspec Structs), shared by handlers and the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from artifacts.ranking import RecommendedItem

__all__ = ["ErrorBody", "Health", "Readiness", "RecommendedItem", "Recommendations"]


class Recommendations(msgspec.Struct, kw_only=True, gc=False):
    """An answer of a recommendation endpoint.

    ``source`` names the main source of the list; ``degraded`` is true when a step could not
    run (e.g. the profile store is unreachable) and the list fell back to a lesser source.

    ``gc=False`` and tuples: an answer holds only strings, numbers and ``gc=False`` items, so
    neither it nor its fields are tracked by the garbage collector (answers are kept per
    customer, :mod:`service.kept`).
    """

    items: tuple[RecommendedItem, ...]
    source: str
    degraded: bool = False
    market: str | None = None
    bundle_version: str
    user_id: str | None = None
    item_id: str | None = None
    notes: tuple[str, ...] = ()


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct, kw_only=True):
    ready: bool
    bundle_version: str | None
    bundle_created_at: str | None
    store: str
    store_reachable: bool


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error answer: what went wrong, for a machine (``error``) and a human (``detail``)."""

    status_code: int
    error: Annotated[str, Meta(min_length=1, description="Machine code, e.g. invalid_parameter, "
                                                         "not_found, body_too_large")]
    detail: Annotated[str, Meta(min_length=1, description="What was wrong and how to fix it")]
    fields: Annotated[list[dict], Meta(description="For bad input: each parameter or body field "
                                                   "at fault (key, source, message)")] = []
