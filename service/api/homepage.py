"""Homepage endpoints: a customer's homepage, and the market homepage for anonymous visitors."""

from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from artifacts.homepage import SECTIONS
from service.api.params import Market, UserId
from service.homepage import Homepage, HomepageService

PerSection = Annotated[int, QueryParameter(description="Items per section (1-50)", ge=1, le=50)]
Sections = Annotated[str | None, QueryParameter(
    description="Comma-separated section keys to include (default: every section the layout "
                f"holds); known: {', '.join(SECTIONS)}", max_length=300)]


def _service(state: State) -> HomepageService:
    """One HomepageService per app, made on first use from the app's recommender."""
    service = getattr(state, "homepage", None)
    if service is None or service.recommender is not state.recommender:
        service = state.homepage = HomepageService(state.recommender)
    return service


class HomepageController(Controller):
    path = "/v1"
    tags = ["homepage"]

    @get("/users/{user_id:str}/homepage", summary="A customer's homepage")
    async def for_user(self, state: State, user_id: UserId, n: PerSection = 8,
                       market: Market = None, sections: Sections = None) -> Homepage:
        """Ordered sections (key, title, reason, items with id, score, source and reason); the
        order and which sections appear follow the customer's segments. Unknown customers,
        customers who opted out of personalisation and answers without the profile store get
        the market homepage (``audience`` says which)."""
        return await _service(state).for_user(user_id, n=n, market=market, sections=sections)

    @get("/homepage", summary="The market homepage for anonymous visitors")
    async def anonymous(self, state: State, n: PerSection = 8, market: Market = None,
                        sections: Sections = None) -> Homepage:
        """What sells, what is new and what is reduced in the market (``audience:
        anonymous``)."""
        return _service(state).anonymous(n=n, market=market, sections=sections)
