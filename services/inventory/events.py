"""What the inventory consumes: stock-moving facts that keep cached positions current.

StockAdjusted        the ERP's new on hand for one location (version-guarded)
OrderPostingBooked   the ERP booked an order: its positions move first, then the order's
                     reservations are committed, so the units are never counted free
                     in between (for a moment they may count twice: never oversold)
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from contracts.events import Envelope, ErpEvent, OrderPostingBooked, StockAdjusted

if TYPE_CHECKING:
    from services.inventory.logic import AtsService

__all__ = ["ERP_DECODER", "handle_erp_event"]

log = logging.getLogger("retailmesh.inventory.events")
ERP_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Envelope[ErpEvent])


async def handle_erp_event(ats: AtsService, envelope: Envelope[Any]) -> None:
    match envelope.data:
        case StockAdjusted(sku=sku, location_id=loc, on_hand=on_hand, version=version):
            if version > 0 and await ats.store.apply_position(sku, loc, on_hand, version):
                ats.stats["event_updates"] += 1
        case OrderPostingBooked(order_id=order_id, positions=positions):
            for p in positions:
                if await ats.store.apply_position(p.sku, p.location_id, p.on_hand, p.version):
                    ats.stats["event_updates"] += 1
            for rid in await ats.store.owner_reservations(order_id):
                _, changed = await ats.store.settle(rid, time.time(), "commit")
                if changed:
                    ats.stats["reservations_committed"] += 1
        case _:
            pass  # refunds move no stock; returns restocked arrive as adjustments
