"""Helpers of the kept-answer tests (test_homepage_kept.py, test_recommendations_kept.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


def personal_customer(profiles) -> str:
    """A customer with a market, a few purchases and no opt-out: one with a personal answer."""
    return next(u for u, p in profiles.items() if p.market and len(p.purchased) >= 3
                and p.consent_personalisation is not False)


async def once_changed(ask: Callable[[], Awaitable], before):
    """The answer ``ask`` gives once it is no longer ``before`` (Redis's invalidation message,
    after a write by another worker, travels on its own connection)."""
    for _ in range(500):
        answer = await ask()
        if answer is not before:
            return answer
        await asyncio.sleep(0.01)
    raise AssertionError("the kept answer was sent after the customer's values changed")
