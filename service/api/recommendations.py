"""Recommendation endpoints: for you, and similar items."""

from litestar import Controller, Request, get

from service.api.params import ItemId, Market, N, OptionalUserId, UserId
from service.errors import error_responses
from service.recommender import Recommender
from service.schemas import Recommendations


class RecommendationController(Controller):
    """Page-view handlers take the ``Request`` and read the services from ``request.app.state``
    (installed, and hot-swapped, by :mod:`service.reload`): injecting Litestar's ``State``
    copies it on every request, ~25,000 instructions (benchmarks/RESULTS.md)."""

    path = "/v1"
    tags = ["recommendations"]

    @get("/users/{user_id:str}/recommendations", summary="Recommendations for a customer")
    async def for_user(self, request: Request, user_id: UserId, n: N = 12,
                       market: Market = None) -> Recommendations:
        """Personal recommendations, excluding what the customer already bought; unknown
        customers get what is popular in their market (``source`` says which)."""
        recommender: Recommender = request.app.state.recommender
        return await recommender.for_user(user_id, n=n, market=market)

    @get("/items/{item_id:str}/similar", summary="Items bought together with an item",
         responses=error_responses(404))
    async def similar(self, request: Request, item_id: ItemId, n: N = 12, market: Market = None,
                      user_id: OptionalUserId = None) -> Recommendations:
        """Customers who bought this also bought; with ``user_id``, leaves out what that customer
        already bought. Unknown item: 404."""
        recommender: Recommender = request.app.state.recommender
        return await recommender.similar(item_id, n=n, market=market, user_id=user_id)
