"""The store's experience API: what a till shows that the system APIs do not answer as such."""

from __future__ import annotations

import msgspec

from contracts.models import Sku, Tier
from contracts.web import PickupAvailability

__all__ = ["StoreStock", "TillMember"]


class StoreStock(msgspec.Struct, frozen=True, kw_only=True):
    """What can be sold of a SKU at the till's store and at the stores nearest it (the
    till's own first, at 0 km)."""

    sku: Sku
    stores: list[PickupAvailability]


class TillMember(msgspec.Struct, frozen=True, kw_only=True):
    """A loyalty member found at the till: who and which tier, nothing that identifies the
    person (no email, no card number, no balance)."""

    member_id: str
    tier: Tier
