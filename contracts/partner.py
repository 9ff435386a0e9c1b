"""The partner experience API: what a marketplace or a delivery app sends and reads."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.models import CustomerRef, OrderLineIn, PaymentReference, Sku

__all__ = ["PartnerAvailability", "PartnerAvailabilityItem", "PartnerOrderRequest"]


class PartnerAvailabilityItem(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    #: units the partner may sell now (the partner channel's stock, net of reservations)
    quantity: Annotated[int, msgspec.Meta(ge=0)]
    in_stock: bool


class PartnerAvailability(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PartnerAvailabilityItem]
    #: SKUs asked for that the retailer does not sell
    unknown_skus: list[str]


class PartnerOrderRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A marketplace order: shipped from the partner channel's stock, priced by the
    retailer's catalogue, for the partner's own buyer (`customer_ref`, the partner's id of
    them: they are the partner's customers, not the shop's accounts)."""

    customer_ref: CustomerRef
    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=50)]
    payment_reference: PaymentReference
