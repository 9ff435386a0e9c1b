"""Path and query parameters of the APIs that show orders and returns (the orders API and
the channels in front of it): one declaration each, so that every API documents and checks
the same syntax."""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter, QueryParameter

from contracts.models import ORDER_CURSOR_PATTERN, ORDER_ID_PATTERN, RETURN_ID_PATTERN

__all__ = ["OrderCursor", "OrderParam", "PageLimit", "ReturnParam"]

OrderParam = Annotated[str, PathParameter(pattern=ORDER_ID_PATTERN)]
ReturnParam = Annotated[str, PathParameter(pattern=RETURN_ID_PATTERN)]
OrderCursor = Annotated[
    str | None,
    QueryParameter(pattern=ORDER_CURSOR_PATTERN, description="next_cursor of the last page"),
]
PageLimit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size")]
