"""The web shop's experience API: products as a shop page shows them, in two versions, and
what a signed-in customer sends (`WebCheckoutRequest`: the orders API's checkout, on the web
channel, without what only partners send).

v1 answers one network-wide quantity (what can be shipped) and an in-stock flag; v2 splits
it into ship availability and pick-up availability at the stores nearest the shopper. v1's
`quantity` is always v2's `ship.quantity` for the same product at the same moment.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from contracts.bounds import Count, Name
from contracts.models import (
    MAX_ORDER_LINES,
    MAX_PAGE,
    Category,
    LocationId,
    MemberId,
    Money,
    OrderLineIn,
    Page,
    PaymentReference,
    PointsRedemption,
    Sku,
)
from contracts.rules import Checked, OnlyWhen

__all__ = [
    "MAX_NEAR_STORES",
    "PickupAvailability",
    "ShipAvailability",
    "WebCheckoutRequest",
    "WebProductPageV1",
    "WebProductPageV2",
    "WebProductV1",
    "WebProductV2",
]

Units = Annotated[Count, msgspec.Meta(description="Units available to sell")]
#: stores a product page or a till shows pick-up at (the `stores` query's maximum)
MAX_NEAR_STORES = 10


class WebProductV1(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    name: Name
    category: Category | None = None
    price: Money
    #: units that can be sold for delivery, over the whole network
    quantity: Units
    in_stock: bool


class WebProductPageV1(Page, frozen=True, kw_only=True):
    items: Annotated[list[WebProductV1], msgspec.Meta(max_length=MAX_PAGE)]


class ShipAvailability(msgspec.Struct, frozen=True, kw_only=True):
    """What can be delivered: the distribution centres' stock, net of reservations."""

    quantity: Units
    in_stock: bool


class PickupAvailability(msgspec.Struct, frozen=True, kw_only=True):
    """What can be picked up at one store today."""

    store_id: LocationId
    name: Name
    #: as the crow flies from the place asked about
    distance_km: Annotated[float, msgspec.Meta(ge=0)]
    quantity: Units
    in_stock: bool


class WebProductV2(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    name: Name
    category: Category | None = None
    price: Money
    ship: ShipAvailability
    #: the nearest stores to `near`, nearest first; empty when no place was given
    pickup: Annotated[list[PickupAvailability], msgspec.Meta(max_length=MAX_NEAR_STORES)]
    #: the store the distances are measured from (the one asked for, or the store whose
    #: postcode area is nearest the postcode asked for); None when no place was given
    near: LocationId | None = None


class WebProductPageV2(Page, frozen=True, kw_only=True):
    items: Annotated[list[WebProductV2], msgspec.Meta(max_length=MAX_PAGE)]


class WebCheckoutRequest(Checked, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A signed-in customer's basket, on the web channel. Prices come from the catalogue.
    `pickup_store_id` names the store of a pick-up, and is only for one."""

    RULES: ClassVar = (OnlyWhen("pickup_store_id", "fulfilment", "pickup", default="ship"),)

    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=MAX_ORDER_LINES)]
    payment_reference: PaymentReference
    #: ship from the web channel's locations, or pick up at a store (its stock)
    fulfilment: Literal["ship", "pickup"] = "ship"
    pickup_store_id: LocationId | msgspec.UnsetType = msgspec.UNSET
    redeem: PointsRedemption | None = None
    #: the customer's loyalty member, to earn points (the redemption's member, if any)
    member_id: MemberId | None = None
