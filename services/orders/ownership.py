"""Who an order belongs to, and who may act for whom: a shop customer (their JWT subject)
owns their shop orders; a marketplace partner owns the orders it placed for its buyers, who
are named `partner:<partner>:<ref>` and are never a shop account; operators and the mesh's
services act on any; a partner's idempotency keys are the partner's, across its keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.kit.errors import Forbidden

if TYPE_CHECKING:
    from contracts.models import CheckoutRequest
    from services.kit.identity import Identity

__all__ = [
    "PARTNER_CHANNEL",
    "PARTNER_CUSTOMER",
    "check_customer",
    "customer_for",
    "customer_of",
    "is_operator",
    "owns",
    "partner_problems",
    "principal_of",
    "shop_customer",
]


#: how a marketplace partner's customer is named on its orders: never a shop account
PARTNER_CUSTOMER = "partner:"
#: the sales channel of marketplace orders (its stock and its limits are the partners')
PARTNER_CHANNEL = "partner"


def principal_of(identity: Identity) -> str:
    """Whose idempotency keys these are: a partner's, whichever of its keys or tokens sends
    them (a retry after a key rotation is still a replay), else the consumer's."""
    if identity.partner_id:
        return "partner:" + identity.partner_id
    return f"{identity.kind}:{identity.consumer}"


def customer_of(identity: Identity) -> str:
    return identity.sub or identity.consumer


def shop_customer(identity: Identity) -> str | None:
    """The shop account the caller signed in as (their JWT subject); None for a partner, a
    till (a store_id), a service, and for a subject spelled like a partner's customer."""
    sub = identity.sub
    if identity.kind != "user" or identity.partner_id or identity.store_id or sub is None:
        return None
    return None if sub.startswith(PARTNER_CUSTOMER) else sub


def owns(row: Any, identity: Identity) -> bool:
    """The caller is the order's customer: its partner for a marketplace order, the signed-in
    customer for a shop order."""
    if row.partner_id is not None:
        return bool(identity.partner_id == row.partner_id)
    return bool(row.customer == shop_customer(identity))


def is_operator(identity: Identity) -> bool:
    return identity.is_admin or identity.kind == "service" or "orders:admin" in identity.scopes


def customer_for(data: CheckoutRequest, identity: Identity) -> str:
    """Who the order is for: a partner's own buyer (`partner:<partner>:<ref>`), else the
    caller."""
    if identity.partner_id:
        return f"{PARTNER_CUSTOMER}{identity.partner_id}:{data.customer_ref}"
    return customer_of(identity)


def partner_problems(data: CheckoutRequest, partner_id: str | None) -> list[dict[str, str]]:
    """A marketplace order names its buyer, ships from the partner channel and uses no
    loyalty account of the shop's; anyone else's order names no marketplace buyer."""
    if partner_id is None:
        problems = []
        if data.customer_ref is not None:
            problems.append(
                {"field": "customer_ref", "message": "only a partner's orders have one"}
            )
        if data.channel == PARTNER_CHANNEL:
            problems.append({"field": "channel", "message": "the partner channel is a partner's"})
        return problems
    problems = []
    if data.customer_ref is None:
        problems.append({"field": "customer_ref", "message": "a partner's order names its buyer"})
    if data.channel != PARTNER_CHANNEL:
        problems.append({"field": "channel", "message": "a partner's orders are channel partner"})
    if data.fulfilment != "ship":
        problems.append({"field": "fulfilment", "message": "a partner's orders are shipped"})
    if data.redeem is not None or data.member_id is not None:
        problems.append({"field": "member_id", "message": "no loyalty account on partner orders"})
    return problems


def check_customer(identity: Identity) -> None:
    """A caller who orders for themselves has a subject that can own the order: one spelled
    like a partner's buyer could place an order it could never see again."""
    if identity.partner_id is None and customer_of(identity).startswith(PARTNER_CUSTOMER):
        raise Forbidden("this subject cannot order as a customer of the shop")
