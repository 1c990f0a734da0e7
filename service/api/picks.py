"""Batch picks for email builders, streamed as one JSON line per customer."""

import time
from collections.abc import AsyncIterator

import msgspec
from litestar import Controller, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.response import Stream

from service.picks import PickRequest

CHUNK = 250
_ENCODER = msgspec.json.Encoder()


class PicksController(Controller):
    path = "/v1"
    tags = ["picks"]

    @post("/picks", summary="Picks for many customers (NDJSON stream)", status_code=200)
    async def picks(self, state: State, data: JSONBody[PickRequest]) -> Stream:
        """One line per customer, in request order: ``{"user_id", "items", "source", "market",
        "capped", "reason"}``. Excludes recent purchases and items the last mails of the
        campaign family showed; a customer over the frequency cap gets an empty pick with the
        reason. With ``record``, the picks are written to the sent log."""
        engine = state.pick_engine
        # validate the market before the stream starts, so a bad one is a clean 400
        engine.recommender.resolve_market(engine.recommender.catalog, data.market, None)
        now = time.time()

        async def lines() -> AsyncIterator[bytes]:
            for start in range(0, len(data.users), CHUNK):
                chunk = data.users[start:start + CHUNK]
                picks = await engine.pick(chunk, n=data.n, market=data.market,
                                          campaign=data.campaign, record=data.record, now=now)
                yield b"".join(_ENCODER.encode(p) + b"\n" for p in picks)

        return Stream(lines(), media_type="application/x-ndjson")
