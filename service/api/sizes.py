"""Preselected size: for a customer, and for an anonymous session."""

from typing import Annotated

from litestar import Controller, Request, get
from litestar.params import QueryParameter

from artifacts.ids import ID_PATTERN, MAX_ID_LENGTH
from service.api.params import UserId
from service.errors import error_responses
from service.sizes import SizeResponse

SessionId = UserId  # same id rules
ItemQuery = Annotated[str, QueryParameter(
    description=f"The product page's item id; 1-{MAX_ID_LENGTH} characters: letters, digits "
                "and . _ : @ - (starting with a letter or digit)",
    pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]


class SizeController(Controller):
    path = "/v1"
    tags = ["sizes"]

    @get("/users/{user_id:str}/size", summary="The size to preselect for a customer",
         responses=error_responses(404))
    async def for_user(self, request: Request, user_id: UserId, item_id: ItemQuery) -> SizeResponse:
        """The size of the item to preselect, with a confidence in [0, 1] and the reason, or
        ``size: null`` with the reason why not (no history for this size system, too
        uncertain, one size). Uses the trainer's profile and the customer's live size signals.
        Unknown item: 404."""
        return await request.app.state.size_advisor.for_user(user_id, item_id)

    @get("/sessions/{session_id:str}/size", summary="The size to preselect for a session",
         responses=error_responses(404))
    async def for_session(self, request: Request, session_id: SessionId,
                          item_id: ItemQuery) -> SizeResponse:
        """As for a customer, from the sizes the anonymous session has been viewing, carting
        and buying (``POST /v1/events`` with ``size``); a session linked to a customer by a
        login also uses that customer's history. Unknown item: 404."""
        return await request.app.state.size_advisor.for_session(session_id, item_id)
