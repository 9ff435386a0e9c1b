"""The partner experience API: what a marketplace or a delivery app sends and reads."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.bounds import Count
from contracts.models import MAX_ORDER_LINES, CustomerRef, OrderLineIn, PaymentReference, Sku

__all__ = ["PartnerAvailability", "PartnerAvailabilityItem", "PartnerOrderRequest"]


class PartnerAvailabilityItem(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    #: units the partner may sell now (the partner channel's stock, net of reservations)
    quantity: Count
    in_stock: bool


class PartnerAvailability(msgspec.Struct, frozen=True, kw_only=True):
    items: Annotated[list[PartnerAvailabilityItem], msgspec.Meta(max_length=100)]
    #: SKUs asked for that the retailer does not sell
    unknown_skus: Annotated[list[Sku], msgspec.Meta(max_length=100)]


class PartnerOrderRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A marketplace order: shipped from the partner channel's stock, priced by the
    retailer's catalogue, for the partner's own buyer (`customer_ref`, the partner's id of
    them: they are the partner's customers, not the shop's accounts)."""

    customer_ref: CustomerRef
    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=MAX_ORDER_LINES)]
    payment_reference: PaymentReference
