"""Batch picks for email builders, streamed as one JSON line per customer."""

import logging
import time
from collections.abc import AsyncIterator

import msgspec
from litestar import Controller, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Stream

from service.api.bodies import json_body, json_only
from service.errors import Unavailable, error_responses
from service.picks import MAX_PICK_USERS, Pick, PickRequest
from service.store.base import StoreUnavailable

CHUNK = 250
log = logging.getLogger(__name__)
_ENCODER = msgspec.json.Encoder()


class PicksController(Controller):
    path = "/v1"
    tags = ["picks"]

    @post("/picks", summary="Picks for many customers (NDJSON stream)", status_code=200,
          media_type="application/x-ndjson", before_request=json_only,
          operation_class=json_body(PickRequest),
          responses={200: ResponseSpec(Pick, media_type="application/x-ndjson",
                                       generate_examples=False,
                                       description="One JSON object per line (newline-delimited "
                                                   "JSON), this schema per line"),
                     **error_responses(400, 413, 415, 503)},
          description=f"1 to {MAX_PICK_USERS} customers per request, 1 to 50 items each (``n``; "
                      "the body is also bound by the request size limit: 413). Answers one JSON "
                      "line per customer, in request order: ``{\"user_id\", \"items\", "
                      "\"source\", \"market\", \"capped\", \"reason\"}``. Excludes recent "
                      "purchases and items the last mails of the campaign family showed; a "
                      "customer over the frequency cap gets an empty pick with the reason. With "
                      "``record``, the picks are written to the sent log.")
    async def picks(self, state: State, data: JSONBody[PickRequest]) -> Stream:
        """Streams in chunks of ``CHUNK`` customers. A bad market (400) or an unreachable
        profile store (503) is answered before the stream starts, from the first chunk; if the
        store fails later, the stream ends early with fewer lines than customers (each line
        names its customer: the caller retries the rest) and the cause is logged."""
        engine = state.pick_engine
        # validate the market before the stream starts, so a bad one is a clean 400
        engine.recommender.resolve_market(engine.recommender.catalog, data.market, None)
        now = time.time()

        async def chunk(start: int) -> bytes:
            picks = await engine.pick(data.users[start:start + CHUNK], n=data.n,
                                      market=data.market, campaign=data.campaign,
                                      record=data.record, now=now)
            return b"".join(_ENCODER.encode(p) + b"\n" for p in picks)

        try:
            first = await chunk(0)
        except StoreUnavailable as exc:
            raise Unavailable(f"no picks, the profile store is unreachable ({exc}); retry") \
                from None

        async def lines() -> AsyncIterator[bytes]:
            yield first
            for start in range(CHUNK, len(data.users), CHUNK):
                try:
                    yield await chunk(start)
                except StoreUnavailable as exc:
                    log.warning("picks stream ended early after %d of %d customers: profile "
                                "store unreachable (%s)", start, len(data.users), exc)
                    return

        return Stream(lines(), media_type="application/x-ndjson")
