"""Homepage endpoints: a customer's homepage, and the market homepage for anonymous visitors."""

from typing import Annotated

from litestar import Controller, Request, get
from litestar.params import QueryParameter

from artifacts.homepage import SECTIONS
from service.api.params import Market, UserId
from service.homepage import Homepage, HomepageService

PerSection = Annotated[int, QueryParameter(description="Items per section (1-50)", ge=1, le=50)]
Sections = Annotated[str | None, QueryParameter(
    description="Comma-separated section keys to include (default: every section the layout "
                f"holds); known: {', '.join(SECTIONS)}", max_length=300)]


class HomepageController(Controller):
    path = "/v1"
    tags = ["homepage"]

    @get("/users/{user_id:str}/homepage", summary="A customer's homepage")
    async def for_user(self, request: Request, user_id: UserId, n: PerSection = 8,
                       market: Market = None, sections: Sections = None) -> Homepage:
        """Ordered sections (key, title, reason, items with id, score, source and reason); the
        order and which sections appear follow the customer's segments. Unknown customers,
        customers who opted out of personalisation and answers without the profile store get
        the market homepage (``audience`` says which)."""
        homepage: HomepageService = request.app.state.homepage
        return await homepage.for_user(user_id, n=n, market=market, sections=sections)

    @get("/homepage", summary="The market homepage for anonymous visitors")
    async def anonymous(self, request: Request, n: PerSection = 8, market: Market = None,
                        sections: Sections = None) -> Homepage:
        """What sells, what is new and what is reduced in the market (``audience:
        anonymous``)."""
        homepage: HomepageService = request.app.state.homepage
        return homepage.anonymous(n=n, market=market, sections=sections)
