"""Checkout rules from configuration (`deploy/config/orders.toml`): units per line and per
order by channel, and the stores that offer pick-up. Checked before an order row exists, so
a refused checkout leaves nothing behind (422 with the offending fields)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

__all__ = ["ChannelLimits", "CheckoutRules", "load_rules"]

Units = Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class ChannelLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_line_units: Units
    max_order_units: Units


class Pickup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    stores: list[str] = []


class CheckoutRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    limits: dict[str, ChannelLimits]
    pickup: Pickup = Pickup()

    def for_channel(self, channel: str) -> ChannelLimits:
        return self.limits.get(channel) or self.limits["default"]

    def problems(
        self, channel: str, quantities: list[int], fulfilment: str, store: str | None
    ) -> list[dict[str, str]]:
        """Field errors of a checkout against these rules (empty: it may be taken)."""
        limits = self.for_channel(channel)
        errors = [
            {
                "field": f"lines[{n}].quantity",
                "message": f"at most {limits.max_line_units} units per line on {channel}",
            }
            for n, quantity in enumerate(quantities)
            if quantity > limits.max_line_units
        ]
        if sum(quantities) > limits.max_order_units:
            errors.append(
                {
                    "field": "lines",
                    "message": f"at most {limits.max_order_units} units per order on {channel}",
                }
            )
        if fulfilment == "pickup" and store is not None and store not in self.pickup.stores:
            errors.append({"field": "pickup_store_id", "message": f"{store} offers no pick-up"})
        return errors


def load_rules(path: str | Path) -> CheckoutRules:
    rules = msgspec.toml.decode(Path(path).read_bytes(), type=CheckoutRules)
    if "default" not in rules.limits:
        raise ValueError(f"{path}: [limits.default] is required")
    return rules
