"""The signed-in customer's routes of the web shop, the same in v1 and v2: checkout (with
the client's `Idempotency-Key`, passed through), their orders, returns and points."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, SkipValidation

from contracts.models import (
    Ledger,
    LoyaltyAccount,
    Order,
    OrderPage,
    OrderReturnRequest,
    Return,
)
from contracts.web import WebCheckoutRequest
from services.kit.errors import problem_responses
from services.kit.idempotency_key import IdempotencyKey
from services.kit.identity import Identity, caller_token
from services.kit.order_params import OrderCursor, OrderParam, PageLimit, ReturnParam
from services.kit.relay import relay
from services.web.customer import CustomerDesk, require_customer

__all__ = ["CustomerV1Controller", "CustomerV2Controller"]

Desk = SkipValidation[CustomerDesk]
Caller = SkipValidation[Identity]


def _caller(request: Request[Any, Any, Any], identity: Identity) -> str:
    """The customer's identity header, to call the services behind as them."""
    require_customer(identity)
    return caller_token(request)


class _CustomerRoutes(Controller):
    @post(
        "/checkout",
        status_code=201,
        summary="Check out the customer's basket (Idempotency-Key required)",
        description="The orders API's checkout for the signed-in customer: 201 with the "
        "confirmed order, 409 out of stock, 422 not enough points; a replay with the same "
        "key answers the first response.",
        responses=problem_responses(401, 403, 409, 422, 503),
    )
    async def checkout(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        data: JSONBody[WebCheckoutRequest],
        idempotency_key: IdempotencyKey,
    ) -> Response[Order]:
        return await relay(
            request, desk.checkout(_caller(request, identity), idempotency_key, data)
        )

    @get(
        "/orders",
        summary="The customer's own orders, newest first",
        responses=problem_responses(401, 403, 503),
    )
    async def orders(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        cursor: OrderCursor = None,
        limit: PageLimit = 20,
    ) -> Response[OrderPage]:
        return await relay(request, desk.orders_page(_caller(request, identity), cursor, limit))

    @get(
        "/orders/{order_id:str}",
        summary="One of the customer's orders, with its status history",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def order(
        self, request: Request[Any, Any, Any], desk: Desk, identity: Caller, order_id: OrderParam
    ) -> Response[Order]:
        return await relay(request, desk.order(_caller(request, identity), order_id))

    @post(
        "/returns",
        status_code=201,
        summary="Return lines of one of the customer's orders (Idempotency-Key required)",
        description="201 with the accepted return; the refund follows (status `refunded`). "
        "409 when the order cannot be returned yet, is past the window, or has fewer units "
        "left than asked; 422 for a key used with another body.",
        responses=problem_responses(401, 403, 404, 409, 422, 503),
    )
    async def start_return(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        data: JSONBody[OrderReturnRequest],
        idempotency_key: IdempotencyKey,
    ) -> Response[Return]:
        return await relay(
            request, desk.start_return(_caller(request, identity), idempotency_key, data)
        )

    @get(
        "/returns/{return_id:str}",
        summary="One of the customer's returns",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def a_return(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        return_id: ReturnParam,
    ) -> Response[Return]:
        return await relay(request, desk.a_return(_caller(request, identity), return_id))

    @get(
        "/loyalty",
        summary="The customer's loyalty points: balance, held, available",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def points(
        self, request: Request[Any, Any, Any], desk: Desk, identity: Caller
    ) -> Response[LoyaltyAccount]:
        return await relay(request, desk.points(_caller(request, identity)))

    @get(
        "/loyalty/ledger",
        summary="The customer's points history",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def points_history(
        self, request: Request[Any, Any, Any], desk: Desk, identity: Caller
    ) -> Response[Ledger]:
        return await relay(request, desk.points_history(_caller(request, identity)))


class CustomerV1Controller(_CustomerRoutes):
    path = "/v1"
    tags = ["web v1"]


class CustomerV2Controller(_CustomerRoutes):
    path = "/v2"
    tags = ["web v2"]
