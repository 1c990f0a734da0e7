"""Recommendation endpoints: for you, and similar items."""

from litestar import Controller, get
from litestar.datastructures import State

from service.api.params import ItemId, Market, N, OptionalUserId, UserId
from service.schemas import Recommendations


class RecommendationController(Controller):
    path = "/v1"
    tags = ["recommendations"]

    @get("/users/{user_id:str}/recommendations", summary="Recommendations for a customer")
    async def for_user(self, state: State, user_id: UserId, n: N = 12,
                       market: Market = None) -> Recommendations:
        """Personal recommendations, excluding what the customer already bought; unknown
        customers get what is popular in their market (``source`` says which)."""
        return await state.recommender.for_user(user_id, n=n, market=market)

    @get("/items/{item_id:str}/similar", summary="Items bought together with an item")
    async def similar(self, state: State, item_id: ItemId, n: N = 12, market: Market = None,
                      user_id: OptionalUserId = None) -> Recommendations:
        """Customers who bought this also bought; with ``user_id``, leaves out what that customer
        already bought. Unknown item: 404."""
        return await state.recommender.similar(item_id, n=n, market=market, user_id=user_id)
