"""The store's experience API: what a till shows that the system APIs do not answer as such."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.models import MemberId, Sku, Tier
from contracts.web import MAX_NEAR_STORES, PickupAvailability

__all__ = ["StoreStock", "TillMember"]


class StoreStock(msgspec.Struct, frozen=True, kw_only=True):
    """What can be sold of a SKU at the till's store and at the stores nearest it (the
    till's own first, at 0 km)."""

    sku: Sku
    stores: Annotated[list[PickupAvailability], msgspec.Meta(max_length=MAX_NEAR_STORES)]


class TillMember(msgspec.Struct, frozen=True, kw_only=True):
    """A loyalty member found at the till: who and which tier, nothing that identifies the
    person (no email, no card number, no balance)."""

    member_id: MemberId
    tier: Tier
