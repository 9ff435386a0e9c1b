"""A marketplace partner's calls: bulk availability of the partner channel, orders for its
own buyers, and its orders' status. Each is the partner's own: the partner comes from its
identity (its API key's or token's partner), and the orders service is called as the
partner, so another partner's orders are 404 there and here, in both modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.models import AvailabilityResult, CheckoutRequest
from contracts.partner import PartnerAvailability, PartnerAvailabilityItem
from services.kit.errors import Forbidden, Unavailable
from services.kit.identity import IDENTITY_HEADER
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from contracts.partner import PartnerOrderRequest
    from services.kit.identity import Identity
    from services.kit.registry import ServiceClient, ServiceResponse

__all__ = ["PARTNER_CHANNEL", "PartnerDesk", "require_partner"]

PARTNER_CHANNEL = "partner"
#: a checkout waits for its saga: as long as the gateway gives orders
CHECKOUT_TIMEOUT_S = 30.0


def require_partner(identity: Identity) -> str:
    """The calling partner; 403 for a caller that is not one."""
    if not identity.partner_id:
        raise Forbidden("the partner API is for partners (an API key or a partner's token)")
    return identity.partner_id


class PartnerDesk:
    def __init__(self, orders: ServiceClient, inventory: ServiceClient) -> None:
        self.orders, self.inventory = orders, inventory

    async def availability(self, skus: list[str]) -> PartnerAvailability | ServiceResponse:
        """The partner channel's ATS of each SKU, or the inventory's refusal as it is."""
        try:
            r = await self.inventory.request(
                "POST", "/availability/query", json={"skus": skus, "channel": PARTNER_CHANNEL}
            )
        except ServiceCallError as exc:
            raise Unavailable(f"the inventory service does not answer: {exc}") from None
        if r.status != 200:
            return r
        result = r.decode(AvailabilityResult)
        return PartnerAvailability(
            items=[
                PartnerAvailabilityItem(sku=a.sku, quantity=a.ats, in_stock=a.ats > 0)
                for a in result.items
            ],
            unknown_skus=result.unknown_skus,
        )

    def place(self, caller: str, key: str, data: PartnerOrderRequest) -> Awaitable[ServiceResponse]:
        checkout = CheckoutRequest(
            lines=data.lines,
            payment_reference=data.payment_reference,
            channel=PARTNER_CHANNEL,
            fulfilment="ship",
            customer_ref=data.customer_ref,
        )
        return self.orders.request(
            "POST",
            "/orders",
            json=checkout,
            headers={IDENTITY_HEADER: caller, "Idempotency-Key": key},
            timeout=CHECKOUT_TIMEOUT_S,
        )

    def orders_page(
        self, caller: str, cursor: str | None, limit: int
    ) -> Awaitable[ServiceResponse]:
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        return self.orders.request(
            "GET", "/orders", params=params, headers={IDENTITY_HEADER: caller}
        )

    def order(self, caller: str, order_id: str) -> Awaitable[ServiceResponse]:
        return self.orders.request("GET", f"/orders/{order_id}", headers={IDENTITY_HEADER: caller})
