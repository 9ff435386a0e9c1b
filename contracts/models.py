"""Canonical models shared by every service.

Published contracts: a change is backward compatible (a new optional field with a default)
or it is a new version. Request bodies refuse unknown fields; responses never do, so a
client built against an older contract keeps working when a field is added.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

import msgspec

from contracts.bounds import Count, Cursor, Detail, Name, Note, Signed, Subject, Timestamp
from contracts.rules import Checked, ExactlyOne, OnlyWhen

__all__ = [
    "LOCATION_PATTERN",
    "ORDER_CURSOR_PATTERN",
    "ORDER_ID_PATTERN",
    "POSTING_ID_PATTERN",
    "RETURN_ID_PATTERN",
    "SKU_PATTERN",
    "Adjustment",
    "Availability",
    "AvailabilityQuery",
    "AvailabilityResult",
    "BatchResult",
    "Category",
    "Channel",
    "CheckoutRequest",
    "ClaimLine",
    "CollectRequest",
    "Currency",
    "CustomerRef",
    "DayClose",
    "Earning",
    "Email",
    "ExpiryRun",
    "HoldRequest",
    "InventoryPosition",
    "Ledger",
    "LedgerEntry",
    "LocationAvailability",
    "LocationId",
    "LocationKind",
    "LoyaltyAccount",
    "MemberEmail",
    "MemberId",
    "MemberIn",
    "MemberLookup",
    "MemberProfile",
    "Money",
    "Order",
    "OrderId",
    "OrderLine",
    "OrderLineIn",
    "OrderPage",
    "OrderReturnRequest",
    "OrderStatus",
    "OrderStatusEntry",
    "Page",
    "PaymentReference",
    "PointsBooked",
    "PointsHold",
    "PointsRedemption",
    "PositionsQuery",
    "PositionsResult",
    "PostingId",
    "Product",
    "ProductPage",
    "Quantity",
    "RebuildReport",
    "RecordedTransaction",
    "Reservation",
    "ReservationId",
    "ReservationRequest",
    "Return",
    "ReturnClaim",
    "ReturnId",
    "ReturnLine",
    "ReturnLineIn",
    "ReturnRequest",
    "Reversal",
    "SaleLine",
    "SequenceGap",
    "Sku",
    "SkuPositions",
    "StockAdjustment",
    "StockLocation",
    "StoreGaps",
    "Tender",
    "Tier",
    "TillTransaction",
    "TransactionBatch",
    "TransactionId",
    "TransactionOutcome",
    "TransactionPage",
]

#: the most items a page of any list holds (its `limit`'s maximum)
MAX_PAGE = 200
#: the most stores and distribution centres the ERP answers (its seed has a few dozen)
MAX_LOCATIONS = 10_000
#: lines of an order or a return
MAX_ORDER_LINES = 50
#: every return takes back at least a unit of its order (lines x units per line)
MAX_RETURNS_PER_ORDER = MAX_ORDER_LINES * 1_000
#: status changes of one order (each status is entered at most once)
MAX_HISTORY = 20
#: a ledger answers its newest entries, up to this many
MAX_LEDGER_ENTRIES = 1_000
#: sequence gaps answered per store (the oldest first; close them and ask again)
MAX_GAPS = 1_000
#: a day close makes one summary per currency
MAX_DAY_SUMMARIES = 300
#: a page of a store's transactions of one day (its `limit`'s maximum)
MAX_DAY_TRANSACTIONS = 1_000
#: a page of a store's day ends at (its till, the sequence number there)
DAY_CURSOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}~[0-9]{1,16}\Z"
#: order lines a reservations rebuild names as refused (the count is in its log)
MAX_REFUSED = 1_000

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{2,31}\Z"
LOCATION_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,31}\Z"
POSTING_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z"

Sku = Annotated[
    str,
    msgspec.Meta(
        pattern=SKU_PATTERN,
        description="Stock keeping unit: 3-32 upper-case letters, digits or dashes.",
        examples=["SKU-000001"],
    ),
]
LocationId = Annotated[
    str,
    msgspec.Meta(
        pattern=LOCATION_PATTERN,
        description="A store or distribution centre code.",
        examples=["STORE-001"],
    ),
]
PostingId = Annotated[
    str,
    msgspec.Meta(
        pattern=POSTING_ID_PATTERN,
        description="The poster's own id for the posting; the ERP stores each id once.",
    ),
]
Currency = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z", description="ISO 4217 code", examples=["EUR"])
]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
#: units of one order or return line
LineUnits = Annotated[int, msgspec.Meta(ge=1, le=1_000)]
#: units one reservation holds
ReservedUnits = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
#: a till's transaction number, from 1
Sequence = Annotated[int, msgspec.Meta(ge=1, le=2**53)]
#: points one hold keeps for an order
HeldPoints = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
#: what the store asks for at pick-up
PickupCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}\Z")]
MinorUnits = Annotated[
    int, msgspec.Meta(ge=0, le=10**12, description="Amount in the currency's minor units")
]
LocationKind = Literal["store", "dc"]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset")]


class Money(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An amount in integer minor units and its ISO 4217 currency."""

    amount: MinorUnits
    currency: Currency


Category = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z0-9-]{0,31}\Z",
        description="A catalogue category (lower case, dashes)",
        examples=["apparel"],
    ),
]


class Product(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    name: Name
    price: Money
    active: bool = True
    #: where the web shop files it; None for a product the ERP has not categorised
    category: Category | None = None


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """Keyset pagination: pass `next_cursor` back as `cursor` for the next page."""

    next_cursor: Cursor | None = None


class ProductPage(Page, frozen=True, kw_only=True):
    items: Annotated[list[Product], msgspec.Meta(max_length=MAX_PAGE)]


class StockLocation(msgspec.Struct, frozen=True, kw_only=True):
    id: LocationId
    name: Name
    kind: LocationKind
    region: Name
    #: where it is (stores: for pick-up near a customer); None where the ERP does not say
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}\Z")] | None = None
    postcode: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None


class InventoryPosition(msgspec.Struct, frozen=True, kw_only=True):
    """Units on hand of one SKU at one location, as the ERP books them."""

    sku: Sku
    location_id: LocationId
    on_hand: Signed
    version: Count
    updated_at: Timestamp


class SkuPositions(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    positions: Annotated[list[InventoryPosition], msgspec.Meta(max_length=MAX_LOCATIONS)]


class PositionsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A bulk read of positions: up to 100 SKUs in one call."""

    skus: Annotated[list[Sku], msgspec.Meta(min_length=1, max_length=100)]


class PositionsResult(msgspec.Struct, frozen=True, kw_only=True):
    items: Annotated[list[SkuPositions], msgspec.Meta(max_length=100)]
    unknown_skus: Annotated[list[Sku], msgspec.Meta(max_length=100)]


class StockAdjustment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A booked change of on-hand stock (a count, a receipt, a write-off)."""

    adjustment_id: PostingId
    sku: Sku
    location_id: LocationId
    delta: Annotated[int, msgspec.Meta(ge=-100_000, le=100_000)]
    reason: Literal["count", "receipt", "damage", "correction"]


ReservationId = Annotated[
    str,
    msgspec.Meta(
        pattern=POSTING_ID_PATTERN,
        description="The caller's id for the reservation (an order id and line): idempotent.",
    ),
]
Channel = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z0-9-]{0,31}\Z", description="A sales channel", examples=["web"]
    ),
]


class LocationAvailability(msgspec.Struct, frozen=True, kw_only=True):
    location_id: LocationId
    on_hand: Signed
    reserved: Count
    safety_stock: Count
    #: on hand - reserved - safety stock, never below 0
    ats: Count


class Availability(msgspec.Struct, frozen=True, kw_only=True):
    """Available to sell: one SKU in one channel, summed over the channel's locations."""

    sku: Sku
    channel: Channel
    ats: Count
    locations: Annotated[list[LocationAvailability], msgspec.Meta(max_length=MAX_LOCATIONS)]
    #: when the ERP's positions were read
    as_of: Timestamp


class AvailabilityQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    skus: Annotated[list[Sku], msgspec.Meta(min_length=1, max_length=100)]
    channel: Channel = "web"


class AvailabilityResult(msgspec.Struct, frozen=True, kw_only=True):
    items: Annotated[list[Availability], msgspec.Meta(max_length=100)]
    unknown_skus: Annotated[list[Sku], msgspec.Meta(max_length=100)]


class ReservationRequest(Checked, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Hold units of one SKU for an order: at a location, or anywhere in a channel (the first
    of the channel's locations, in its configured order, that has all of them). One of
    `channel` and `location_id`."""

    RULES: ClassVar = (ExactlyOne(("channel", "location_id")),)

    reservation_id: ReservationId
    sku: Sku
    quantity: ReservedUnits
    owner: PostingId
    channel: Channel | msgspec.UnsetType = msgspec.UNSET
    location_id: LocationId | msgspec.UnsetType = msgspec.UNSET
    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] | None = None


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    reservation_id: ReservationId
    sku: Sku
    quantity: ReservedUnits
    location_id: LocationId
    owner: PostingId
    status: Literal["held", "confirmed", "released", "expired", "committed"]
    expires_at: Timestamp | None = None


TransactionId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z",
        description="Minted by the till (a UUID); the POS stores each once.",
    ),
]
TillId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}\Z")]


class SaleLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity
    unit_price: Money
    #: the line's discount in minor units (not per unit)
    discount: MinorUnits = 0


class Tender(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["cash", "card", "voucher", "gift-card", "loyalty"]
    amount: Money


class TillTransaction(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A sale or a return rung up at a till, possibly offline, sent later in a batch."""

    transaction_id: TransactionId
    kind: Literal["sale", "return"]
    store_id: LocationId
    till_id: TillId
    #: per till, from 1, no reuse: gaps show transactions not yet received
    sequence: Sequence
    occurred_at: UtcTime
    lines: Annotated[list[SaleLine], msgspec.Meta(min_length=1, max_length=200)]
    tenders: Annotated[list[Tender], msgspec.Meta(max_length=20)] = []
    member_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,40}\Z")] | None = None
    #: for a return: the sale it returns (its receipt)
    original_transaction_id: TransactionId | None = None


class TransactionBatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    transactions: Annotated[list[TillTransaction], msgspec.Meta(min_length=1, max_length=500)]


class TransactionOutcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    transaction_id: TransactionId
    status: Literal["accepted", "duplicate", "rejected"]
    reason: Detail | None = None
    #: a rejection's stable code (`sale-not-synced` is the one worth sending again later)
    code: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class BatchResult(msgspec.Struct, frozen=True, kw_only=True):
    accepted: Count
    duplicates: Count
    rejected: Count
    results: Annotated[list[TransactionOutcome], msgspec.Meta(max_length=500)]


class DayClose(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A store's day closed for summary posting: what this close summarized (nothing when
    every transaction of the day was in an earlier close)."""

    store_id: LocationId
    day: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date"}, max_length=10)]
    transactions: Count
    summary_ids: Annotated[list[PostingId], msgspec.Meta(max_length=MAX_DAY_SUMMARIES)] = []


class SequenceGap(msgspec.Struct, frozen=True, kw_only=True):
    """Sequence numbers of a till not received yet (both ends included)."""

    till_id: TillId
    first_missing: Sequence
    last_missing: Sequence


class StoreGaps(msgspec.Struct, frozen=True, kw_only=True):
    store_id: LocationId
    gaps: Annotated[list[SequenceGap], msgspec.Meta(max_length=MAX_GAPS)]


class RecordedTransaction(msgspec.Struct, frozen=True, kw_only=True):
    transaction: TillTransaction
    total: Money
    received_at: Timestamp


class TransactionPage(Page, frozen=True, kw_only=True):
    items: Annotated[list[RecordedTransaction], msgspec.Meta(max_length=MAX_DAY_TRANSACTIONS)]


class ClaimLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sku: Sku
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000)]


class ReturnClaim(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Units of a store sale taken back outside the tills (a return by receipt through the
    orders service): the POS counts them with the tills' returns, under the sale's lock,
    so the two paths together never take back more than was sold."""

    claim_id: PostingId
    lines: Annotated[list[ClaimLine], msgspec.Meta(min_length=1, max_length=50)]


MemberId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,40}\Z")]
#: local@domain without spaces or control characters. Spelled as explicit ranges, not `\s`:
#: what `\s` matches differs between Python's regex and ECMA's, which clients validate with.
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\x00-\x20\x7f]{1,64}@[^@\x00-\x20\x7f]{1,255}\Z")]
Tier = Literal["base", "silver", "gold"]


class MemberIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Enrol a member. The card number and email are stored only as keyed hashes."""

    member_id: MemberId
    tier: Tier = "base"
    #: the customer's JWT subject: who may read this account
    customer_sub: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    card_number: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{8,19}\Z")] | None = None
    email: Email | None = None


class LoyaltyAccount(msgspec.Struct, frozen=True, kw_only=True):
    member_id: MemberId
    tier: Tier
    balance: Signed
    #: points held for orders not captured yet
    held: Count
    available: Signed


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["earn", "redeem", "reverse", "expire", "adjust"]
    points: Signed
    source_id: Annotated[str, msgspec.Meta(max_length=128)]
    created_at: Timestamp
    #: who made an adjustment (`user:<sub>`, `service:<name>`), and why
    by: Annotated[str, msgspec.Meta(max_length=120)] | None = None
    reason: Note | None = None


class Ledger(msgspec.Struct, frozen=True, kw_only=True):
    member_id: MemberId
    entries: Annotated[list[LedgerEntry], msgspec.Meta(max_length=MAX_LEDGER_ENTRIES)]


class HoldRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    hold_id: PostingId
    points: HeldPoints
    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 900


class PointsHold(msgspec.Struct, frozen=True, kw_only=True):
    hold_id: PostingId
    member_id: MemberId
    points: HeldPoints
    status: Literal["held", "captured", "released", "expired"]
    expires_at: Timestamp


class Adjustment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    source_id: PostingId
    points: Annotated[int, msgspec.Meta(ge=-10_000_000, le=10_000_000)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Earning(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Points for a purchase outside the tills (an online order), once per source."""

    source_id: PostingId
    amount: MinorUnits


class Reversal(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Take back, pro rata, what the returned part of a purchase earned, once per source.
    The ledger keeps it as `<original_source_id>/<source_id>` (128 characters at most), so
    `source_id` is one character shorter than a posting id."""

    source_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}\Z")]
    original_source_id: PostingId
    amount: MinorUnits


class PointsBooked(msgspec.Struct, frozen=True, kw_only=True):
    """Points an earning or a reversal booked (0 when its source was booked before)."""

    member_id: MemberId
    points: Signed


class ExpiryRun(msgspec.Struct, frozen=True, kw_only=True):
    """What one run of points expiry did."""

    members: Count
    points: Count


class MemberLookup(Checked, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """By card, by email or by the customer's JWT subject (one of them; the subject for
    operators and customer service only). A POST, so none lands in a URL or a log."""

    RULES: ClassVar = (ExactlyOne(("card_number", "email", "customer_sub")),)

    card_number: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{8,19}\Z")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    email: Email | msgspec.UnsetType = msgspec.UNSET
    customer_sub: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | msgspec.UnsetType = (
        msgspec.UNSET
    )


class MemberProfile(msgspec.Struct, frozen=True, kw_only=True):
    """A member as customer service sees it: whose account it is, the email masked."""

    member_id: MemberId
    tier: Tier
    customer_sub: Subject | None = None
    email_masked: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    balance: Signed
    held: Count
    available: Signed


class MemberEmail(msgspec.Struct, frozen=True, kw_only=True):
    member_id: MemberId
    email: Email


ORDER_ID_PATTERN = r"^ord-[0-9a-f]{32}\Z"
#: a page of orders ends at (its creation in microseconds, its id)
ORDER_CURSOR_PATTERN = r"^[0-9]{1,17}~ord-[0-9a-f]{32}\Z"
RETURN_ID_PATTERN = r"^ret-[0-9a-f]{32}\Z"
OrderId = Annotated[
    str,
    msgspec.Meta(pattern=ORDER_ID_PATTERN, description="An order id, minted at checkout"),
]
OrderStatus = Literal[
    "pending",
    "confirmed",
    "posted",
    "ready_for_pickup",
    "shipped",
    "collected",
    "delivered",
    "cancelled",
    "rejected",
]
CustomerRef = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z",
        description="A marketplace partner's own id of its buyer",
    ),
]
PaymentReference = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z",
        description="The payment the storefront already authorized (its provider's id)",
    ),
]


class OrderLineIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sku: Sku
    quantity: LineUnits


class PointsRedemption(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pay part of the order with the customer's own loyalty points."""

    member_id: MemberId
    points: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]


class CheckoutRequest(Checked, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An order from a storefront. Prices come from the ERP's catalogue, not the client.
    `pickup_store_id` names the store of a pick-up, and is only for one."""

    RULES: ClassVar = (OnlyWhen("pickup_store_id", "fulfilment", "pickup", default="ship"),)

    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=MAX_ORDER_LINES)]
    payment_reference: PaymentReference
    channel: Channel = "web"
    #: ship from the channel's locations, or pick up at a store (its stock)
    fulfilment: Literal["ship", "pickup"] = "ship"
    pickup_store_id: LocationId | msgspec.UnsetType = msgspec.UNSET
    redeem: PointsRedemption | None = None
    #: the customer's loyalty member, to earn points (the redemption's member, if any)
    member_id: MemberId | None = None
    #: a marketplace's own id of its buyer: partners only (their customers are theirs, not
    #: the shop's accounts); refused from anyone else
    customer_ref: CustomerRef | None = None


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    quantity: LineUnits
    unit_price: Money
    #: where the units are reserved (known once the stock step ran)
    location_id: LocationId | None = None


class OrderStatusEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: OrderStatus
    at: Timestamp
    detail: Annotated[str, msgspec.Meta(max_length=400)] | None = None


class Order(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    order_id: OrderId
    status: OrderStatus
    customer: Subject
    channel: Channel
    fulfilment: Literal["ship", "pickup"]
    lines: Annotated[list[OrderLine], msgspec.Meta(max_length=MAX_ORDER_LINES)]
    total: Money
    payment_reference: PaymentReference
    created_at: Timestamp
    updated_at: Timestamp
    pickup_store_id: LocationId | None = None
    member_id: MemberId | None = None
    #: the marketplace partner that placed the order (its customer is then the partner's)
    partner_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    points_redeemed: Count = 0
    #: why a rejected order was rejected
    reason: Annotated[str, msgspec.Meta(max_length=400)] | None = None
    #: shown to the customer only: the store asks for it at pick-up
    pickup_code: PickupCode | None = None
    history: Annotated[list[OrderStatusEntry], msgspec.Meta(max_length=MAX_HISTORY)] = []


class OrderPage(Page, frozen=True, kw_only=True):
    items: Annotated[list[Order], msgspec.Meta(max_length=MAX_PAGE)]


class CollectRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pickup_code: PickupCode


ReturnId = Annotated[
    str, msgspec.Meta(pattern=RETURN_ID_PATTERN, description="A return id, minted at intake")
]


class ReturnLineIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sku: Sku
    quantity: LineUnits
    #: back into sellable stock, or written off
    disposition: Literal["restock", "damaged"] = "restock"


class ReturnRequest(Checked, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Return lines of an online order (`order_id`) or of a store sale (`receipt`, the till
    transaction id), one of them. At a store, the store is the caller's (its till's
    identity)."""

    RULES: ClassVar = (ExactlyOne(("order_id", "receipt")),)

    lines: Annotated[list[ReturnLineIn], msgspec.Meta(min_length=1, max_length=MAX_ORDER_LINES)]
    order_id: OrderId | msgspec.UnsetType = msgspec.UNSET
    receipt: TransactionId | msgspec.UnsetType = msgspec.UNSET
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class OrderReturnRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Return lines of one online order: the customer's own on the web shop, any at a store's
    till (the store taking it is the till's)."""

    order_id: OrderId
    lines: Annotated[list[ReturnLineIn], msgspec.Meta(min_length=1, max_length=MAX_ORDER_LINES)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class ReturnLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    quantity: LineUnits
    disposition: Literal["restock", "damaged"]
    unit_price: Money
    #: the returned share of the original line's discount
    discount: MinorUnits
    #: where the units come back
    location_id: LocationId


class Return(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    return_id: ReturnId
    #: accepted (refund on its way) → refunded (ERP refund booked, points and stock settled)
    status: Literal["accepted", "refunded"]
    customer: Subject
    lines: Annotated[list[ReturnLine], msgspec.Meta(max_length=MAX_ORDER_LINES)]
    refund: Money
    created_at: Timestamp
    updated_at: Timestamp
    order_id: OrderId | None = None
    receipt: TransactionId | None = None
    store_id: LocationId | None = None
    member_id: MemberId | None = None
    #: redeemed points given back, pro rata
    points_returned: Count = 0
    reason: Note | None = None


class RebuildReport(msgspec.Struct, frozen=True, kw_only=True):
    """Open orders' reservations put back after the reservations' store lost them."""

    orders: Count
    reservations: Count
    #: lines that no longer fit in stock (their orders need an operator)
    refused: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=MAX_REFUSED)
    ] = []
