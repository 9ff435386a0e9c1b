"""Loyalty errors.

LoyaltyError (ServiceError)
├── UnknownMember          404 unknown-member (also for another customer's account)
├── UnknownHold            404 unknown-hold
├── MemberExists           409 member-exists
├── HoldConflict           409 hold-conflict (reused id, or settled already)
└── InsufficientPoints     422 insufficient-points
"""

from __future__ import annotations

from services.kit.errors import Conflict, NotFound, ServiceError, Unprocessable

__all__ = [
    "HoldConflict",
    "InsufficientPoints",
    "LoyaltyError",
    "MemberExists",
    "UnknownHold",
    "UnknownMember",
]


class LoyaltyError(ServiceError):
    pass


class UnknownMember(NotFound, LoyaltyError):
    slug, title = "unknown-member", "Unknown member"

    def __init__(self) -> None:
        super().__init__("no such member")


class UnknownHold(NotFound, LoyaltyError):
    slug, title = "unknown-hold", "Unknown hold"

    def __init__(self, hold_id: str) -> None:
        super().__init__(f"no hold {hold_id}", hold_id=hold_id)


class MemberExists(Conflict, LoyaltyError):
    slug, title = "member-exists", "Member exists"


class HoldConflict(Conflict, LoyaltyError):
    slug, title = "hold-conflict", "Hold conflict"


class InsufficientPoints(Unprocessable, LoyaltyError):
    slug, title = "insufficient-points", "Insufficient points"

    def __init__(self, requested: int, available: int) -> None:
        super().__init__(
            f"{requested} points requested, {available} available",
            requested=requested,
            available=available,
        )
