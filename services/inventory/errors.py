"""Inventory errors.

InventoryError (ServiceError)
├── UnknownSku              404 unknown-sku
├── UnknownChannel          404 unknown-channel
├── UnknownReservation      404 unknown-reservation
├── InsufficientStock       409 insufficient-stock   (names the shortfall)
├── ReservationConflict     409 reservation-conflict (reused id, or settled already)
└── PositionsUnavailable    503 positions-unavailable (ERP down, nothing fresh enough)
"""

from __future__ import annotations

from services.kit.errors import Conflict, NotFound, ServiceError, Unavailable

__all__ = [
    "InsufficientStock",
    "InventoryError",
    "PositionsUnavailable",
    "ReservationConflict",
    "UnknownChannel",
    "UnknownReservation",
    "UnknownSku",
]


class InventoryError(ServiceError):
    pass


class UnknownSku(NotFound, InventoryError):
    slug, title = "unknown-sku", "Unknown SKU"

    def __init__(self, sku: str) -> None:
        super().__init__(f"no product with SKU {sku}", sku=sku)


class UnknownChannel(NotFound, InventoryError):
    slug, title = "unknown-channel", "Unknown channel"

    def __init__(self, channel: str, known: list[str]) -> None:
        super().__init__(f"no channel {channel}", channels=known)


class UnknownReservation(NotFound, InventoryError):
    slug, title = "unknown-reservation", "Unknown reservation"

    def __init__(self, rid: str) -> None:
        super().__init__(f"no reservation {rid}", reservation_id=rid)


class InsufficientStock(Conflict, InventoryError):
    slug, title = "insufficient-stock", "Insufficient stock"

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(
            f"{requested} of {sku} requested, {available} available at one location",
            sku=sku,
            requested=requested,
            available=available,
            shortfall=requested - available,
        )


class ReservationConflict(Conflict, InventoryError):
    slug, title = "reservation-conflict", "Reservation conflict"


class PositionsUnavailable(Unavailable, InventoryError):
    slug, title = "positions-unavailable", "Stock positions unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "2"})
