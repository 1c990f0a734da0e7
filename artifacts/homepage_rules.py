"""Homepage rules: section keys, segment names, and the layouts chosen by segment.

The trainer writes :class:`HomepageRules` into the bundle's manifest (``homepage``) from its
config, so the rules live with the bundle and a shop tunes them per training run; a bundle
without them (trained before homepages) reads as the defaults. :mod:`artifacts.homepage`
assembles pages by these rules.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

import msgspec
from msgspec import Meta

from artifacts.bundle import BundleManifest

#: Segment names the trainer writes into ``BatchProfile.segments`` (plus ``rfm:RFM`` scores).
SEGMENTS = ("vip", "discount_hunter", "trend_seeker", "new", "lapsing")
#: Section key -> default title; ``{market}`` and ``{item}`` are filled in.
SECTIONS: dict[str, str] = {
    "recently_viewed": "Recently viewed",
    "for_you": "Picked for you",
    "because_you_bought": "Because you bought {item}",
    "trending": "Trending in {market}",
    "new_arrivals": "New arrivals",
    "on_sale": "On sale",
    "buy_again": "Buy again",
    "back_in_size": "Back in your size",
}


class Layout(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Sections in display order, why this order, and optional per-section titles/reasons."""

    sections: list[str]
    reason: str
    titles: dict[str, str] = {}
    reasons: dict[str, str] = {}


def _default_layouts() -> dict[str, Layout]:
    """Each segment's signature section first (the product's intent for it), then "buy again"
    and "for you", which predict the next purchase best for every segment: chosen over
    intent-only orders on validation splits (H&M 2020-09-20, demo shop 2026-06-02), see
    benchmarks/RESULTS.md "Homepage"."""
    return {
        "default": Layout(
            sections=["recently_viewed", "buy_again", "for_you", "because_you_bought",
                      "back_in_size", "new_arrivals", "trending", "on_sale"],
            reason="your own picks first, then what is new and selling in your market"),
        "discount_hunter": Layout(
            sections=["on_sale", "buy_again", "for_you", "recently_viewed",
                      "because_you_bought", "back_in_size", "trending", "new_arrivals"],
            reason="you often buy reduced items: the sale comes first",
            reasons={"on_sale": "reduced items, those matching your taste first"}),
        "trend_seeker": Layout(
            sections=["new_arrivals", "buy_again", "for_you", "trending", "recently_viewed",
                      "because_you_bought", "back_in_size"],
            reason="you are quick to buy what is new: new arrivals first, no sale",
            titles={"new_arrivals": "Just in for you"}),
        "vip": Layout(
            sections=["new_arrivals", "buy_again", "for_you", "recently_viewed",
                      "because_you_bought", "back_in_size", "trending"],
            reason="one of our best customers: new arrivals and your picks first",
            titles={"new_arrivals": "First look: new arrivals"}),
        "new": Layout(
            sections=["trending", "buy_again", "because_you_bought", "new_arrivals",
                      "recently_viewed", "for_you", "on_sale"],
            reason="new customer: a welcome selection of what sells, then more like your "
                   "first order",
            titles={"trending": "Welcome! Bestsellers in {market}"}),
        "lapsing": Layout(
            sections=["for_you", "buy_again", "new_arrivals", "on_sale", "recently_viewed",
                      "trending"],
            reason="we have not seen you for a while: a win-back selection",
            titles={"for_you": "Welcome back: picked for you",
                    "new_arrivals": "New since your last visit"},
            reasons={"for_you": "picked for you from your past purchases"}),
    }


def _non_personal() -> Layout:
    return Layout(sections=["trending", "new_arrivals", "on_sale"],
                  reason="market homepage: what sells, what is new and what is reduced")


class HomepageRules(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How homepages are laid out, per segment. The trainer writes these into the manifest
    (``homepage``) from its config (``TrainConfig.homepage``), so a shop tunes them per bundle.
    """

    priority: list[str] = msgspec.field(
        default_factory=lambda: ["lapsing", "new", "discount_hunter", "trend_seeker", "vip"])
    """A customer in several segments gets the layout of the first of these they are in;
    in none of them: ``layouts["default"]``."""
    layouts: dict[str, Layout] = msgspec.field(default_factory=_default_layouts)
    """Layout per segment name, and ``default``. A layout given in a config replaces the
    default one of that name; the others stay (drop a segment from ``priority`` to unuse it)."""
    non_personal: Layout = msgspec.field(default_factory=_non_personal)
    """Anonymous visitors, unknown customers, opted-out customers, profile store down."""
    max_category_run: Annotated[int, Meta(ge=1, le=50)] = 3
    """At most this many items of one category in a row within a section."""
    session_minutes: Annotated[float, Meta(gt=0, le=1440)] = 60.0
    """Live events this recent count as the current session (sensitive-category engagement)."""
    new_arrival_days: Annotated[int, Meta(ge=1, le=365)] = 30
    """The trainer's new-arrivals list: items first seen this many days before the data end."""
    sale_min_markdown: Annotated[float, Meta(gt=0, lt=1)] = 0.1
    """The trainer's on-sale list: current price at least this fraction below list price."""
    list_size: Annotated[int, Meta(ge=1, le=5000)] = 200
    """Items per market in the trainer's new-arrivals and on-sale lists."""

    def __post_init__(self) -> None:
        for name, layout in _default_layouts().items():  # given layouts replace defaults
            self.layouts.setdefault(name, layout)
        for name, layout in [*self.layouts.items(), ("non_personal", self.non_personal)]:
            unknown = sorted(set(layout.sections) - set(SECTIONS))
            if unknown:
                raise ValueError(f"homepage layout {name!r} names unknown section(s) "
                                 f"{', '.join(unknown)}; known: {', '.join(SECTIONS)}")
        missing = [p for p in self.priority if p not in self.layouts]
        if missing:
            raise ValueError(f"homepage priority names segment(s) without a layout: "
                             f"{', '.join(missing)}")


def rules_from_manifest(manifest: BundleManifest) -> tuple[HomepageRules, list[str]]:
    """The bundle's rules, or the defaults with a note when it has none (older bundles)."""
    if not manifest.homepage:
        return HomepageRules(), [f"bundle {manifest.version} has no homepage rules: defaults"]
    return msgspec.convert(manifest.homepage, HomepageRules), []


def choose_layout(rules: HomepageRules, segments: Collection[str]) -> tuple[str, Layout]:
    for name in rules.priority:
        if name in segments:
            return name, rules.layouts[name]
    return "default", rules.layouts["default"]


