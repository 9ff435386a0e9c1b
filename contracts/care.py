"""The customer-service experience API: what an agent searches for, sees, and does, and the
audit of it."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from contracts.bounds import Note, Subject, Timestamp
from contracts.models import (
    MAX_LEDGER_ENTRIES,
    MAX_PAGE,
    MAX_RETURNS_PER_ORDER,
    Email,
    LedgerEntry,
    MemberId,
    MemberProfile,
    Order,
    OrderId,
    Page,
    Return,
)
from contracts.postings import PostingRecord
from contracts.rules import Checked, ExactlyOne

__all__ = [
    "VIEW_ORDERS",
    "AuditEntry",
    "AuditPage",
    "CareAction",
    "CareCustomer",
    "CareOrder",
    "CareSearch",
    "CareView",
    "Goodwill",
    "Reason",
]

#: the orders one view shows (newest first)
VIEW_ORDERS = 20
#: why the agent looks or acts: a ticket, a call; every lookup and action records it
Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=200)]
CardNumber = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{8,19}\Z")]


class CareSearch(Checked, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Find a customer by email, member card or order id (one of them), and say why."""

    RULES: ClassVar = (ExactlyOne(("email", "card_number", "order_id")),)

    reason: Reason
    email: Email | msgspec.UnsetType = msgspec.UNSET
    card_number: CardNumber | msgspec.UnsetType = msgspec.UNSET
    order_id: OrderId | msgspec.UnsetType = msgspec.UNSET


class CareCustomer(msgspec.Struct, frozen=True, kw_only=True):
    """Who was found: the customer (their account's subject) and their loyalty member, the
    email masked."""

    customer: Subject
    member_id: MemberId | None = None
    email_masked: Annotated[str, msgspec.Meta(max_length=320)] | None = None


class CareOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order with its status history, what the ERP booked for it (the order posting and
    any refunds) and its returns with their settlement."""

    order: Order
    postings: Annotated[list[PostingRecord], msgspec.Meta(max_length=MAX_PAGE)]
    returns: Annotated[list[Return], msgspec.Meta(max_length=MAX_RETURNS_PER_ORDER)]


class CareView(msgspec.Struct, frozen=True, kw_only=True):
    """One view of a customer: orders (newest first, up to 20), loyalty account and ledger."""

    customer: Subject
    member: MemberProfile | None = None
    #: the whole address, only when the agent asked for it (`reveal_email`); recorded
    email: Email | None = None
    ledger: Annotated[list[LedgerEntry], msgspec.Meta(max_length=MAX_LEDGER_ENTRIES)] = []
    orders: Annotated[list[CareOrder], msgspec.Meta(max_length=VIEW_ORDERS)] = []


class CareAction(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class Goodwill(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Points given to a customer as a gesture (supervisors), with the reason."""

    points: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    reason: Reason


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    at: Timestamp
    #: the agent's subject
    agent: Subject
    action: Literal["search", "view", "reveal-email", "cancel", "goodwill"]
    #: the customer looked at or acted for (None for a search that found nobody)
    customer: Subject | None = None
    #: what was searched by or acted on (an order id, a member id; never an email)
    subject: Subject | None = None
    reason: Note
    #: what came of it: found, not-found, the answer's status
    outcome: Annotated[str, msgspec.Meta(max_length=64)]


class AuditPage(Page, frozen=True, kw_only=True):
    items: Annotated[list[AuditEntry], msgspec.Meta(max_length=MAX_PAGE)]
