"""Live events, session login and erasure."""

import time

import msgspec
from litestar import Controller, Request, delete, post
from litestar.datastructures import State
from litestar.params import JSONBody

from service.api.bodies import json_body, json_only
from service.api.params import UserId
from service.errors import BadRequest, InvalidBody, Unavailable, error_responses
from service.events import (MAX_EVENTS, EventBatch, EventValidationError, Id, IngestResult,
                            InvalidBatchBody, parse_batch)
from service.ingest import IdentifyResult
from service.store.base import StoreUnavailable

SessionId = UserId  # same id rules


class IdentifyBody(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id


class Erased(msgspec.Struct, kw_only=True):
    user_id: str
    keys_deleted: int
    erased: bool = True


class LiveController(Controller):
    path = "/v1"
    tags = ["live"]

    @post("/events", summary="Apply a batch of live events", status_code=200,
          before_request=json_only, operation_class=json_body(EventBatch),
          responses=error_responses(400, 413, 415, 503),
          description=f"Apply view/cart/purchase/return events, 1 to {MAX_EVENTS} per batch "
                      "(the body is also bound by the request size limit: 413). The whole "
                      "batch is validated first; any bad event rejects all with a 400 "
                      "(``bad_request``) naming each bad event and field, e.g. "
                      "``events[0].item_id``. A body that is missing, not JSON or not "
                      "``{\"events\": [...]}`` is a 400 ``invalid_body``, as on every POST. "
                      "Resending a batch applies it once (idempotent by event id for 24 h).")
    async def events(self, state: State, request: Request) -> IngestResult:
        """Decodes the body itself (not ``data``) so that one 400 names every bad event."""
        now = time.time()
        try:
            events = parse_batch(await request.body(), now)
        except InvalidBatchBody as exc:
            raise InvalidBody(str(exc), fields=exc.problems) from None
        except EventValidationError as exc:
            raise BadRequest(str(exc), fields=exc.problems) from None
        try:
            return await state.ingestor.ingest(events, now)
        except StoreUnavailable as exc:
            raise Unavailable(f"events not applied, the profile store is unreachable ({exc}); "
                              "resend the batch later (it is applied once)") from None

    @post("/sessions/{session_id:str}/identify", summary="Link a session to a customer",
          status_code=200, before_request=json_only,
          operation_class=json_body(IdentifyBody),
          responses=error_responses(400, 413, 415, 503))
    async def identify(self, state: State, session_id: SessionId,
                       data: JSONBody[IdentifyBody]) -> IdentifyResult:
        """On login: carry the anonymous session's signals (views, cart, sizes) over to the
        customer and link the session to them (erasing the customer erases it too)."""
        try:
            return await state.ingestor.identify(session_id, data.user_id, time.time())
        except StoreUnavailable as exc:
            raise Unavailable(f"profile store unreachable ({exc}); retry") from None

    @delete("/users/{user_id:str}", summary="Erase everything held about a customer",
            status_code=200, responses=error_responses(400, 503))
    async def erase(self, state: State, user_id: UserId) -> Erased:
        """Deletes the customer's batch profile, live state, sent-picks log and linked sessions,
        and records the id on the erasure list the trainer reads (their rows are dropped from
        the next training run). Afterwards the customer is served like an unknown visitor."""
        try:
            deleted = await state.recommender.store.erase_user(user_id, time.time())
        except StoreUnavailable as exc:
            raise Unavailable(f"erasure not done, the profile store is unreachable ({exc}); "
                              "retry") from None
        return Erased(user_id=user_id, keys_deleted=deleted)
