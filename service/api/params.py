"""Validated request parameters shared by the controllers (limits show in the OpenAPI schema)."""

from typing import Annotated

from litestar.params import PathParameter, QueryParameter

from artifacts.ids import ID_PATTERN, MAX_ID_LENGTH

_ID_HELP = (f"1-{MAX_ID_LENGTH} characters: letters, digits and . _ : @ - "
            "(starting with a letter or digit)")

UserId = Annotated[str, PathParameter(description=f"Customer id; {_ID_HELP}",
                                      pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]
ItemId = Annotated[str, PathParameter(description=f"Item id; {_ID_HELP}", pattern=ID_PATTERN,
                                      max_length=MAX_ID_LENGTH)]
OptionalUserId = Annotated[str | None, QueryParameter(
    description=f"Personalise for this customer; {_ID_HELP}", pattern=ID_PATTERN,
    max_length=MAX_ID_LENGTH)]
Market = Annotated[str | None, QueryParameter(
    description="Market (country) code as known to the bundle; default: the customer's market",
    pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]
N = Annotated[int, QueryParameter(description="Number of items (1-100)", ge=1, le=100)]
