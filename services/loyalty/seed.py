"""Demo members for `make run`: each linked to a demo customer (the JWT `sub` the banner
mints), with a card, an email and a welcome balance booked through the ledger like any
adjustment, so that balance = the sum of the ledger from the first minute."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.models import Adjustment, MemberIn, Tier

if TYPE_CHECKING:
    from services.loyalty.logic import LoyaltyService

__all__ = ["DEMO_MEMBERS", "seed_loyalty"]

#: member id, tier, the customer's JWT subject, card number, email, welcome points
DEMO_MEMBERS: list[tuple[str, Tier, str, str, str, int]] = [
    ("M-ALICE", "gold", "alice", "6012000000000001", "alice@example.com", 2500),
    ("M-BOB", "base", "bob", "6012000000000002", "bob@example.com", 300),
]


async def seed_loyalty(loyalty: LoyaltyService) -> bool:
    """Enrol the demo members when there are none; True if it did."""
    if await loyalty.count_members() > 0:
        return False
    for member_id, tier, sub, card, email, points in DEMO_MEMBERS:
        await loyalty.enrol(
            MemberIn(
                member_id=member_id, tier=tier, customer_sub=sub, card_number=card, email=email
            )
        )
        welcome = Adjustment(source_id=f"welcome-{member_id}", points=points, reason="welcome")
        await loyalty.adjust(member_id, welcome, by="service:seed")
    return True
