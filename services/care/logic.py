"""Customer service: find a customer, see everything about them in one view, cancel an
order, give goodwill points. Each lookup and action is recorded in the audit first (who,
which customer, why, what came of it), including the ones that find nothing.

The care service calls the services behind as itself, with the scopes an operator's desk
needs (it sees any customer); what it answers is the minimum an agent needs: emails masked
unless the agent asks for the whole address, which is recorded as its own action.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from contracts.care import VIEW_ORDERS, CareCustomer, CareOrder, CareView
from contracts.models import Ledger, LoyaltyAccount, MemberEmail, MemberProfile, Order, OrderPage
from contracts.models import Return as ReturnModel
from contracts.postings import PostingPage
from services.kit.errors import Forbidden, NotFound, Unavailable, Unprocessable
from services.kit.identity import IDENTITY_HEADER, Identity
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from contracts.care import CareSearch, Goodwill
    from services.care.audit import AuditLog
    from services.care.grants import GrantKeys
    from services.kit.identity import IdentityCodec
    from services.kit.registry import ServiceClient, ServiceResponse

__all__ = ["AGENT", "SUPERVISOR", "CareDesk", "agent_of"]

AGENT, SUPERVISOR = "care:read", "care:write"
#: what the care desk may do behind: read any customer's orders, postings, members
_DESK = Identity(
    kind="service",
    consumer="care",
    sub="care",
    scopes=frozenset({"orders:admin", "erp:ledger", "loyalty:lookup", "loyalty:admin"}),
)
T = TypeVar("T")


def agent_of(identity: Identity, scope: str) -> str:
    """The agent (their subject) when they hold `scope` (a supervisor holds both)."""
    holds = identity.has_scope(scope) or (scope == AGENT and identity.has_scope(SUPERVISOR))
    if identity.kind != "user" or not identity.sub or not holds:
        raise Forbidden(f"this needs a customer-service agent with {scope}")
    return identity.sub


class CustomerNotFound(NotFound):
    slug, title = "customer-not-found", "Customer not found"


class KeyReused(Unprocessable):
    slug, title = "idempotency-key-reused", "Idempotency-Key reused with another request"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used for another grant")


class CareDesk:
    def __init__(
        self,
        orders: ServiceClient,
        loyalty: ServiceClient,
        erp: ServiceClient,
        codec: IdentityCodec,
        audit: AuditLog,
        grants: GrantKeys,
    ) -> None:
        self.orders, self.loyalty, self.erp = orders, loyalty, erp
        self.codec, self.audit, self.grants = codec, audit, grants

    # search

    async def search(self, agent: str, data: CareSearch) -> CareCustomer:
        subject = data.order_id or ("card" if data.card_number else "email")
        try:
            found = await self._find(data)
        except CustomerNotFound:
            await self.audit.record(agent, "search", data.reason, "not-found", subject=subject)
            raise
        await self.audit.record(
            agent, "search", data.reason, "found", customer=found.customer, subject=subject
        )
        return found

    async def _find(self, data: CareSearch) -> CareCustomer:
        if data.order_id:
            r = await self._call(self.orders, "GET", f"/orders/{data.order_id}")
            if r.status == 404:
                raise CustomerNotFound(f"no order {data.order_id}")
            order = self._decode(r, Order)
            profile = await self._profile_of(order.customer)
            return CareCustomer(
                customer=order.customer,
                member_id=profile.member_id if profile else None,
                email_masked=profile.email_masked if profile else None,
            )
        by = {"email": data.email} if data.email else {"card_number": data.card_number}
        member = await self._member(by)
        if member is None:
            raise CustomerNotFound("no member with this card or email")
        profile = await self._profile(member)
        if profile.customer_sub is None:
            raise CustomerNotFound("the member has no shop account to look at")
        return CareCustomer(
            customer=profile.customer_sub,
            member_id=profile.member_id,
            email_masked=profile.email_masked,
        )

    # one view

    async def view(self, agent: str, customer: str, reason: str, reveal_email: bool) -> CareView:
        r = await self._call(
            self.orders, "GET", "/orders", params={"customer": customer, "limit": VIEW_ORDERS}
        )
        orders = self._decode(r, OrderPage).items
        profile = await self._profile_of(customer)
        if not orders and profile is None:
            await self.audit.record(agent, "view", reason, "not-found", customer=customer)
            raise CustomerNotFound(f"no orders and no loyalty account for {customer}")
        ledger: list[Any] = []
        email = None
        if profile is not None:
            got = await self._call(self.loyalty, "GET", f"/members/{profile.member_id}/ledger")
            ledger = self._decode(got, Ledger).entries
        details = await asyncio.gather(*(self._order(o) for o in orders))
        await self.audit.record(agent, "view", reason, "found", customer=customer)
        if reveal_email and profile is not None and profile.email_masked is not None:
            got = await self._call(self.loyalty, "GET", f"/members/{profile.member_id}/email")
            email = self._decode(got, MemberEmail).email
            await self.audit.record(
                agent, "reveal-email", reason, "shown", customer=customer, subject=profile.member_id
            )
        return CareView(
            customer=customer, member=profile, email=email, ledger=ledger, orders=list(details)
        )

    async def _order(self, order: Order) -> CareOrder:
        postings, returns = await asyncio.gather(
            self._call(self.erp, "GET", "/postings", params={"order_id": order.order_id}),
            self._call(self.orders, "GET", "/returns", params={"order_id": order.order_id}),
        )
        return CareOrder(
            order=order,
            postings=self._decode(postings, PostingPage).items,
            returns=self._decode(returns, list[ReturnModel]),
        )

    # actions

    async def cancel(self, agent: str, order_id: str, reason: str) -> ServiceResponse:
        """Cancel as the desk; the answer (the order, or why not) goes back as it is."""
        r = await self._call(self.orders, "GET", f"/orders/{order_id}")
        if r.status == 404:
            await self.audit.record(agent, "cancel", reason, "not-found", subject=order_id)
            raise CustomerNotFound(f"no order {order_id}")
        customer = self._decode(r, Order).customer
        done = await self._call(self.orders, "POST", f"/orders/{order_id}/cancel")
        outcome = "cancelled" if done.status == 200 else f"refused {done.status}"
        await self.audit.record(
            agent, "cancel", reason, outcome, customer=customer, subject=order_id
        )
        return done

    async def goodwill(
        self, agent: str, customer: str, key: str, data: Goodwill
    ) -> ServiceResponse:
        """Points for the customer's member, once per agent and Idempotency-Key: the same
        request again is a replay, another one under that key a 422."""
        profile = await self._profile_of(customer)
        if profile is None:
            await self.audit.record(agent, "goodwill", data.reason, "not-found", customer=customer)
            raise CustomerNotFound(f"{customer} has no loyalty account")
        claimed = await self.grants.claim(agent, key, customer, data)
        if claimed is None:
            await self.audit.record(
                agent, "goodwill", data.reason, "refused: key reused", customer=customer
            )
            raise KeyReused()
        source, first = claimed
        # the customer's ledger says what it is; who and why stay in the audit
        r = await self._call(
            self.loyalty,
            "POST",
            f"/members/{profile.member_id}/adjustments",
            json={"source_id": source, "points": data.points, "reason": "goodwill"},
        )
        if r.status != 200:
            outcome = f"refused {r.status}"
        else:
            outcome = f"{data.points} points" if first else "replayed"
        await self.audit.record(
            agent, "goodwill", data.reason, outcome, customer=customer, subject=profile.member_id
        )
        return r

    # the services behind

    async def _profile_of(self, customer: str) -> MemberProfile | None:
        member = await self._member({"customer_sub": customer})
        return None if member is None else await self._profile(member)

    async def _member(self, by: dict[str, Any]) -> str | None:
        r = await self._call(self.loyalty, "POST", "/members/lookup", json=by)
        if r.status == 404:
            return None
        return self._decode(r, LoyaltyAccount).member_id

    async def _profile(self, member_id: str) -> MemberProfile:
        r = await self._call(self.loyalty, "GET", f"/members/{member_id}/profile")
        return self._decode(r, MemberProfile)

    async def _call(
        self,
        client: ServiceClient,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: Any = None,
    ) -> ServiceResponse:
        try:
            return await client.request(
                method,
                path,
                params=params,
                json=json,
                headers={IDENTITY_HEADER: self.codec.sign(_DESK)},
            )
        except ServiceCallError as exc:
            raise Unavailable(
                f"{exc.service} does not answer", headers={"Retry-After": "2"}
            ) from None

    @staticmethod
    def _decode(r: ServiceResponse, type_: type[T]) -> T:
        if r.status != 200:
            raise Unavailable(f"a service behind answered {r.status}", headers={"Retry-After": "2"})
        return msgspec.json.decode(r.body, type=type_)
