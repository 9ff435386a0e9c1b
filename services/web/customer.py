"""The signed-in customer's pages: checkout, their orders, returns and loyalty points.

The web shop owns none of it: each call goes to the orders or the loyalty service under the
customer's own identity (the header the gateway signed for this request), so those
services' ownership rules decide, the same in the embedded and the mesh mode: another
customer's order, return or account is 404, as it is there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from contracts.models import CheckoutRequest, ReturnRequest
from services.kit.errors import Forbidden
from services.kit.identity import IDENTITY_HEADER
from services.web.logic import SHIP_CHANNEL

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping

    from contracts.models import OrderReturnRequest
    from contracts.web import WebCheckoutRequest
    from services.kit.identity import Identity
    from services.kit.registry import ServiceClient, ServiceResponse

__all__ = ["CustomerDesk", "require_customer"]

#: a checkout waits for its saga (stock, points): as long as the gateway gives orders
CHECKOUT_TIMEOUT_S = 30.0


def require_customer(identity: Identity) -> None:
    """These pages are a shopper's: not a till's, a partner's or another service's."""
    if identity.kind != "user" or identity.store_id or identity.partner_id or not identity.sub:
        raise Forbidden("the web shop's account pages are for signed-in customers")


class CustomerDesk:
    def __init__(self, orders: ServiceClient, loyalty: ServiceClient) -> None:
        self.orders, self.loyalty = orders, loyalty

    def checkout(
        self, caller: str, key: str, data: WebCheckoutRequest
    ) -> Awaitable[ServiceResponse]:
        order = CheckoutRequest(**msgspec.structs.asdict(data), channel=SHIP_CHANNEL)
        return self.orders.request(
            "POST",
            "/orders",
            json=order,
            headers={IDENTITY_HEADER: caller, "Idempotency-Key": key},
            timeout=CHECKOUT_TIMEOUT_S,
        )

    def orders_page(
        self, caller: str, cursor: str | None, limit: int
    ) -> Awaitable[ServiceResponse]:
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        return self._get(self.orders, caller, "/orders", params)

    def order(self, caller: str, order_id: str) -> Awaitable[ServiceResponse]:
        return self._get(self.orders, caller, f"/orders/{order_id}")

    def start_return(
        self, caller: str, key: str, data: OrderReturnRequest
    ) -> Awaitable[ServiceResponse]:
        request = ReturnRequest(order_id=data.order_id, lines=data.lines, reason=data.reason)
        return self.orders.request(
            "POST",
            "/returns",
            json=request,
            headers={IDENTITY_HEADER: caller, "Idempotency-Key": key},
        )

    def a_return(self, caller: str, return_id: str) -> Awaitable[ServiceResponse]:
        return self._get(self.orders, caller, f"/returns/{return_id}")

    def points(self, caller: str) -> Awaitable[ServiceResponse]:
        return self._get(self.loyalty, caller, "/accounts/mine")

    async def points_history(self, caller: str) -> ServiceResponse:
        """The ledger of the customer's account (found by their identity first)."""
        account = await self.points(caller)
        if account.status != 200:
            return account
        member_id = account.decode(dict[str, Any])["member_id"]
        return await self._get(self.loyalty, caller, f"/members/{member_id}/ledger")

    @staticmethod
    def _get(
        client: ServiceClient, caller: str, path: str, params: Mapping[str, str | int] | None = None
    ) -> Awaitable[ServiceResponse]:
        return client.request("GET", path, params=params, headers={IDENTITY_HEADER: caller})
