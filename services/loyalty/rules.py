"""The points rules, from `loyalty.toml`: what a member account may do, in one place."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import msgspec

from contracts.models import Tier

__all__ = ["EarningRules", "load_rules"]


class EarningRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The points rules of `loyalty.toml`, in one place:

    earn      rate x what was paid in money (points and vouchers are not money), at most
              `max_points_per_transaction` per purchase and `max_points_per_day` per member
              and UTC day; once per purchase
    reverse   a return takes back its share of what its purchase earned, pro rata, never
              more in all than the purchase earned, and never below `reversal_floor`
              available points
    redeem    a hold, then its capture: never more than the available points
    expire    available points after `expire_after_inactive_days` without activity
    adjust    an operator's (or the orders service's give-back), with its reason and who:
              the only way past the bounds
    """

    points_per_unit: dict[Tier, Annotated[float, msgspec.Meta(ge=0)]]
    #: a member's available points expire after this many days without an earn, a
    #: redemption or an adjustment (None: points never expire)
    expire_after_inactive_days: Annotated[int, msgspec.Meta(ge=1, le=36_500)] | None = None
    max_points_per_transaction: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_points_per_day: Annotated[int, msgspec.Meta(ge=0)] | None = None
    reversal_floor: Annotated[int, msgspec.Meta(ge=0)] = 0

    def points(self, tier: str, amount_minor: int) -> int:
        rate: float = self.points_per_unit.get(tier, 0.0)  # type: ignore[call-overload]
        earned = math.floor(max(amount_minor, 0) / 100 * rate)
        if self.max_points_per_transaction is not None:
            earned = min(earned, self.max_points_per_transaction)
        return earned


def load_rules(path: str | Path) -> EarningRules:
    return msgspec.toml.decode(Path(path).read_bytes(), type=EarningRules)
