"""The calls a saga makes to other services, each with an idempotency key derived from the
order and the step, so that running a step again (a retry, a resumed saga) has no second
visible effect:

    reservation   {order_id}.{line}       inventory: reserve, confirm, release
    points hold   {order_id}.points       loyalty: hold, capture, release
    re-credit     {order_id}.cancel       loyalty: adjustment giving captured points back
    posting       {order_id}              ERP: the order posting
    cancellation  {order_id}.cancel       ERP: the refund posting of a cancelled order

A call ends in one of three ways: it worked; the service refused (`Refused`: the order is
rejected, with a problem the client understands); or the service did not answer usefully
after a few tries (`NotNow`: the saga stops where it is and is resumed later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from contracts.models import (
    Adjustment,
    AvailabilityQuery,
    AvailabilityResult,
    ClaimLine,
    Earning,
    HoldRequest,
    Money,
    RecordedTransaction,
    ReservationRequest,
    ReturnClaim,
    Reversal,
    StockAdjustment,
)
from contracts.postings import OrderPosting, PostingLine, RefundPosting
from services.kit.erp_postings import ErpPostings
from services.kit.errors import Unavailable
from services.kit.events import RetryLater, verdict
from services.kit.events.delivery import retry_after_s
from services.kit.identity import IDENTITY_HEADER, Identity
from services.kit.registry import ServiceCallError
from services.orders.errors import NotReturnable, UnknownReceipt

if TYPE_CHECKING:
    from contracts.models import OrderLine, ReturnLine
    from services.kit.identity import IdentityCodec
    from services.kit.registry import Registry, ServiceResponse

__all__ = ["Downstream", "NotNow", "Refused", "SagaOrder"]

_SERVICE = Identity(
    kind="service",
    consumer="orders",
    scopes=frozenset(
        {
            "inventory:reserve",
            "erp:stock",
            "erp:ledger",
            "erp:post",
            "erp:adjust",
            "loyalty:admin",
            "loyalty:accrue",
        }
    ),
)


log = logging.getLogger("retailmesh.orders")


class Refused(Exception):
    """A service said no for good: the order is rejected with this problem."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        self.status, self.slug, self.detail = status, slug, detail
        super().__init__(detail)


class NotNow(RetryLater):
    """A service did not answer usefully after a few tries (a 5xx, a 429, no answer):
    resume the saga later; an event handler raising it is retried, never dead-lettered
    before `retry_for_h`."""


class SagaOrder(msgspec.Struct, kw_only=True):
    """What a step needs to know of its order."""

    order_id: str
    customer: str
    channel: str
    fulfilment: str
    pickup_store_id: str | None
    lines: list[OrderLine]
    total: Money
    member_id: str | None
    points: int
    created_at: datetime


def _problem_slug(response: ServiceResponse) -> str:
    try:
        kind = msgspec.json.decode(response.body, type=dict[str, Any]).get("type", "")
    except msgspec.DecodeError:
        return ""
    return str(kind).rsplit("/", 1)[-1]


class Downstream:
    def __init__(
        self,
        registry: Registry,
        codec: IdentityCodec,
        *,
        reservation_ttl_s: int,
        hold_ttl_s: int,
        attempts: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        self.inventory = registry.client("inventory")
        self.loyalty = registry.client("loyalty")
        self.erp = registry.client("erp")
        # the effects consumer books many orders at once: their postings share batch calls
        self.postings = ErpPostings(self.erp, codec, _SERVICE)
        self.registry = registry  # the POS only for returns of store sales: found on first use
        self.codec = codec
        self.reservation_ttl_s = reservation_ttl_s
        self.hold_ttl_s = hold_ttl_s
        self.attempts = attempts
        self.backoff_s = backoff_s

    async def _call(
        self, client: Any, method: str, path: str, identity: Identity, body: Any = None
    ) -> ServiceResponse:
        """Call until an answer that is not a 5xx or a 429; `NotNow` after `attempts`."""
        last, asked = "no answer", None
        for attempt in range(self.attempts):
            try:
                response: ServiceResponse = await client.request(
                    method, path, json=body, headers={IDENTITY_HEADER: self.codec.sign(identity)}
                )
            except ServiceCallError as exc:
                last = str(exc)
            else:
                if response.status < 500 and response.status != 429:
                    return response
                last = f"{client.name} answered {response.status}"
                asked = retry_after_s(response.headers)
                if asked is not None and asked > self.backoff_s * 2**attempt:
                    break  # it asked for longer than we wait here: leave it to the retry
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.backoff_s * 2**attempt)
        raise NotNow(f"{method} {client.name}{path}: {last}", asked)

    def _customer(self, order: SagaOrder) -> Identity:
        # Points are the customer's: loyalty checks that the member is theirs.
        return Identity(
            kind="user", consumer="orders", sub=order.customer, scopes=frozenset({"loyalty:redeem"})
        )

    # stock

    async def available(self, skus: list[str], channel: str) -> dict[str, int] | None:
        """The available to sell of these SKUs in the channel, read once (None: no answer;
        the caller goes on without it)."""
        query = AvailabilityQuery(skus=skus, channel=channel)
        try:
            r = await self.inventory.request(
                "POST",
                "/availability/query",
                json=query,
                headers={IDENTITY_HEADER: self.codec.sign(_SERVICE)},
            )
        except ServiceCallError:
            return None
        if r.status != 200:
            return None
        try:
            return {a.sku: a.ats for a in r.decode(AvailabilityResult).items}
        except msgspec.ValidationError:
            return None

    async def reserve(self, order: SagaOrder, index: int) -> str:
        """Reserve one line; returns the location holding it."""
        line = order.lines[index]
        where: dict[str, Any] = (
            {"location_id": order.pickup_store_id}
            if order.fulfilment == "pickup"
            else {"channel": order.channel}
        )
        request = ReservationRequest(
            reservation_id=f"{order.order_id}.{index}",
            sku=line.sku,
            quantity=line.quantity,
            owner=order.order_id,
            ttl_s=self.reservation_ttl_s,
            **where,
        )
        r = await self._call(self.inventory, "POST", "/reservations", _SERVICE, request)
        if r.status == 201:
            return str(msgspec.json.decode(r.body, type=dict[str, Any])["location_id"])
        slug = _problem_slug(r)
        if slug == "insufficient-stock":
            raise Refused(409, "out-of-stock", f"not enough {line.sku} to reserve {line.quantity}")
        if slug in ("unknown-sku", "unknown-channel"):
            raise Refused(422, "bad-order", f"inventory refused {line.sku}: {slug}")
        raise Refused(409, "stock-refused", f"inventory answered {r.status} ({slug})")

    async def confirm_stock(self, order: SagaOrder, index: int) -> None:
        rid = f"{order.order_id}.{index}"
        r = await self._call(self.inventory, "POST", f"/reservations/{rid}/confirm", _SERVICE)
        if r.status != 200:
            raise Refused(409, "reservation-lapsed", f"reservation {rid} could not be kept")

    async def release_stock(self, order: SagaOrder, index: int) -> None:
        """Give a line's units back; a reservation never made or already gone is fine."""
        rid = f"{order.order_id}.{index}"
        r = await self._call(self.inventory, "POST", f"/reservations/{rid}/release", _SERVICE)
        if r.status not in (200, 404, 409):
            raise NotNow(f"release {rid}: inventory answered {r.status}")

    # points

    async def hold_points(self, order: SagaOrder) -> None:
        request = HoldRequest(
            hold_id=f"{order.order_id}.points", points=order.points, ttl_s=self.hold_ttl_s
        )
        path = f"/members/{order.member_id}/holds"
        r = await self._call(self.loyalty, "POST", path, self._customer(order), request)
        if r.status == 201:
            return
        slug = _problem_slug(r)
        if slug == "insufficient-points":
            raise Refused(422, "insufficient-points", f"not enough points to redeem {order.points}")
        if slug == "unknown-member":
            raise Refused(422, "member-not-found", "no such loyalty member for this customer")
        raise Refused(409, "points-refused", f"loyalty answered {r.status} ({slug})")

    async def capture_points(self, order: SagaOrder) -> None:
        path = f"/holds/{order.order_id}.points/capture"
        r = await self._call(self.loyalty, "POST", path, self._customer(order))
        if r.status != 200:
            raise Refused(409, "points-hold-lapsed", "the points hold could not be redeemed")

    async def release_points(self, order: SagaOrder) -> None:
        path = f"/holds/{order.order_id}.points/release"
        r = await self._call(self.loyalty, "POST", path, self._customer(order))
        if r.status not in (200, 404, 409):
            raise NotNow(f"release points: loyalty answered {r.status}")

    async def check_member(self, order: SagaOrder) -> None:
        """The member named to earn points must be the customer's own."""
        r = await self._call(
            self.loyalty, "GET", f"/members/{order.member_id}", self._customer(order)
        )
        if r.status == 404:
            raise Refused(422, "member-not-found", "no such loyalty member for this customer")
        if r.status != 200:
            raise Refused(409, "points-refused", f"loyalty answered {r.status}")

    async def earn_points(self, order: SagaOrder) -> None:
        """Points for a posted order (once: the order id is the source)."""
        request = Earning(source_id=order.order_id, amount=order.total.amount)
        path = f"/members/{order.member_id}/earnings"
        r = await self._call(self.loyalty, "POST", path, _SERVICE, request)
        if r.status not in (200, 404):
            raise NotNow(f"earn points: loyalty answered {r.status}")

    async def reverse_points(self, order: SagaOrder, source_id: str, amount: int) -> int:
        """Take back what `amount` of the order earned (once per source); the points."""
        request = Reversal(source_id=source_id, original_source_id=order.order_id, amount=amount)
        path = f"/members/{order.member_id}/reversals"
        r = await self._call(self.loyalty, "POST", path, _SERVICE, request)
        if r.status == 404:
            return 0
        if r.status != 200:
            raise NotNow(f"reverse points: loyalty answered {r.status}")
        return -int(msgspec.json.decode(r.body, type=dict[str, Any])["points"])

    async def recredit_points(self, order: SagaOrder) -> None:
        """Give captured points back to a cancelled order's member (once: by source id)."""
        request = Adjustment(
            source_id=f"{order.order_id}.cancel",
            points=order.points,
            reason=f"order {order.order_id} cancelled",
        )
        path = f"/members/{order.member_id}/adjustments"
        r = await self._call(self.loyalty, "POST", path, _SERVICE, request)
        if r.status not in (200, 404):
            raise NotNow(f"re-credit points: loyalty answered {r.status}")

    # ERP

    def _posting_lines(self, order: SagaOrder) -> list[PostingLine]:
        return [
            PostingLine(
                sku=line.sku,
                location_id=line.location_id or "",
                quantity=line.quantity,
                unit_price=line.unit_price,
            )
            for line in order.lines
        ]

    async def is_posted(self, order: SagaOrder) -> bool:
        """Whether the ERP booked the order (its posting id is the order id)."""
        r = await self._call(self.erp, "GET", f"/postings/{order.order_id}", _SERVICE)
        if r.status not in (200, 404):
            raise NotNow(f"ERP answered {r.status} for posting {order.order_id}")
        return r.status == 200

    async def post_order(self, order: SagaOrder) -> None:
        posting = OrderPosting(
            posting_id=order.order_id,
            order_id=order.order_id,
            lines=self._posting_lines(order),
            total=order.total,
            occurred_at=order.created_at,
        )
        await self.postings.book(posting)

    async def post_cancellation(self, order: SagaOrder, at: datetime) -> None:
        """Refund a posted order in the ERP and book its units back into stock."""
        posting = RefundPosting(
            posting_id=f"{order.order_id}.cancel",
            order_id=order.order_id,
            lines=self._posting_lines(order),
            amount=order.total,
            occurred_at=at,
        )
        await self.postings.book(posting)
        for index, line in enumerate(order.lines):
            adjustment = StockAdjustment(
                adjustment_id=f"{order.order_id}.cancel.{index}",
                sku=line.sku,
                location_id=line.location_id or "",
                delta=line.quantity,
                reason="receipt",
            )
            r = await self._call(self.erp, "POST", "/inventory/adjustments", _SERVICE, adjustment)
            verdict(r, f"ERP restock {adjustment.adjustment_id}", done=(201,))

    # returns

    async def receipt(self, transaction_id: str) -> RecordedTransaction:
        """A store sale from the POS (the system of record for till transactions)."""
        try:
            pos = self.registry.client("pos")
            r = await self._call(pos, "GET", f"/transactions/{transaction_id}", _SERVICE)
        except (NotNow, ServiceCallError):
            raise Unavailable(
                "the POS does not answer; try again", headers={"Retry-After": "5"}
            ) from None
        if r.status == 404:
            raise UnknownReceipt(transaction_id)
        if r.status != 200:
            raise Unavailable(f"the POS answered {r.status}", headers={"Retry-After": "5"})
        return r.decode(RecordedTransaction)

    async def claim_receipt(self, receipt: str, claim_id: str, lines: Sequence[Any]) -> None:
        """Take a return's units of a store sale at the POS, which counts them with the
        tills' returns under the sale's lock: 422 naming the lines when they are not left."""
        claim = ReturnClaim(
            claim_id=claim_id,
            lines=[ClaimLine(sku=ln.sku, quantity=ln.quantity) for ln in lines],
        )
        try:
            pos = self.registry.client("pos")
            r = await self._call(pos, "POST", f"/transactions/{receipt}/claims", _SERVICE, claim)
        except (NotNow, ServiceCallError):
            raise Unavailable(
                "the POS does not answer; try again", headers={"Retry-After": "5"}
            ) from None
        if r.status in (200, 201):
            return
        if r.status == 404:
            raise UnknownReceipt(receipt)
        if r.status == 409:
            problem = msgspec.json.decode(r.body, type=dict[str, Any])
            raise NotReturnable(
                "these lines cannot be returned",
                errors=[{"field": "lines", "message": str(problem.get("detail", ""))}],
                code=problem.get("code"),
            )
        raise Unavailable(f"the POS answered {r.status}", headers={"Retry-After": "5"})

    async def release_claim(self, receipt: str, claim_id: str) -> None:
        """Give a claim back (its return was not recorded); a failure leaves the units
        taken, which refunds nothing: logged, never raised."""
        try:
            pos = self.registry.client("pos")
            path = f"/transactions/{receipt}/claims/{claim_id}/release"
            r = await self._call(pos, "POST", path, _SERVICE)
            if r.status != 200:
                log.error(
                    "claim %s on %s not released: POS answered %s", claim_id, receipt, r.status
                )
        except (NotNow, ServiceCallError) as exc:
            log.error("claim %s on %s not released: %s", claim_id, receipt, exc)

    async def post_refund(
        self,
        posting_id: str,
        source_id: str,
        lines: list[ReturnLine],
        amount: int,
        currency: str,
        at: datetime,
    ) -> None:
        posting = RefundPosting(
            posting_id=posting_id,
            order_id=source_id,
            lines=[
                PostingLine(
                    sku=line.sku,
                    location_id=line.location_id,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    discount=line.discount,
                )
                for line in lines
            ],
            amount=Money(amount, currency),
            occurred_at=at,
        )
        r = await self._call(self.erp, "POST", "/postings/refunds", _SERVICE, posting)
        if r.status != 201:
            raise NotNow(f"ERP refused the refund {posting_id}: {r.status} {r.body[:200]!r}")

    async def reverse_for(self, member_id: str, source_id: str, original: str, amount: int) -> None:
        request = Reversal(source_id=source_id, original_source_id=original, amount=amount)
        r = await self._call(
            self.loyalty, "POST", f"/members/{member_id}/reversals", _SERVICE, request
        )
        if r.status not in (200, 404):
            raise NotNow(f"reverse points: loyalty answered {r.status}")

    async def credit(self, member_id: str, source_id: str, points: int, reason: str) -> None:
        request = Adjustment(source_id=source_id, points=points, reason=reason)
        r = await self._call(
            self.loyalty, "POST", f"/members/{member_id}/adjustments", _SERVICE, request
        )
        if r.status not in (200, 404):
            raise NotNow(f"credit points: loyalty answered {r.status}")

    async def restock(self, adjustment_id: str, sku: str, location_id: str, units: int) -> None:
        adjustment = StockAdjustment(
            adjustment_id=adjustment_id,
            sku=sku,
            location_id=location_id,
            delta=units,
            reason="receipt",
        )
        r = await self._call(self.erp, "POST", "/inventory/adjustments", _SERVICE, adjustment)
        if r.status != 201:
            raise NotNow(f"ERP refused the restock {adjustment_id}: {r.status}")
