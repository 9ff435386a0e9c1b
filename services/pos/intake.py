"""What a till transaction must be to be taken: one sale or return on its own, and a return
against its sale. Each refusal has a stable code, answered per transaction in the batch.

The rule for a store sale: paid in full when sold at a till; then each unit taken back at
most once, by a return at the sale's store's tills or by receipt through the orders
service (`claims.py`), never at a higher price than sold. Nothing refused reaches the ERP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set as AbstractSet
from datetime import datetime, timedelta

import msgspec

from contracts.events import SaleLinePosted, TillTransactionRecorded
from contracts.models import Money, TillTransaction

__all__ = ["MONEY_TENDERS", "IntakeRules", "Rejected", "check", "check_return", "recorded", "total"]


def recorded(tid: str, tx: TillTransaction) -> TillTransactionRecorded:
    """What the rest of the mesh hears of a recorded transaction."""
    return TillTransactionRecorded(
        transaction_id=tid,
        kind=tx.kind,
        store_id=tx.store_id,
        till_id=tx.till_id,
        sequence=tx.sequence,
        occurred_at=tx.occurred_at,
        lines=[
            SaleLinePosted(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                discount=line.discount,
            )
            for line in tx.lines
        ],
        total=total(tx),
        member_id=tx.member_id,
        original_transaction_id=tx.original_transaction_id,
        paid=paid(tx) if tx.kind == "sale" else None,
    )


#: tenders that are money the store received; points and vouchers are not
MONEY_TENDERS = frozenset({"cash", "card", "gift-card"})


def paid(tx: TillTransaction) -> Money:
    owed = total(tx)
    money = sum(t.amount.amount for t in tx.tenders if t.kind in MONEY_TENDERS)
    return Money(min(money, owed.amount), owed.currency)


def total(tx: TillTransaction) -> Money:
    currency = tx.lines[0].unit_price.currency
    amount = sum(line.quantity * line.unit_price.amount - line.discount for line in tx.lines)
    return Money(amount, currency)


class Rejected(Exception):
    """A till transaction the POS does not take: a stable code and the reason."""

    def __init__(self, code: str, reason: str) -> None:
        self.code, self.reason = code, reason
        super().__init__(f"{code}: {reason}")


class IntakeRules(msgspec.Struct, frozen=True, kw_only=True):
    #: the stores' currency: a till's transaction in another is refused at intake
    currency: str = "EUR"
    #: how far ahead of the POS's clock a till's clock may be
    clock_skew_s: float = 300.0


#: unknown SKUs a rejection names (the reason stays short; a till shows it)
_NAMED = 10


def check(
    tx: TillTransaction, rules: IntakeRules, now: datetime, unknown: AbstractSet[str] = frozenset()
) -> None:
    """What a transaction must be on its own; `Rejected` otherwise."""
    strange = sorted({line.sku for line in tx.lines} & unknown)
    if strange:
        named = ", ".join(strange[:_NAMED])
        more = f" and {len(strange) - _NAMED} more" if len(strange) > _NAMED else ""
        raise Rejected("unknown-sku", f"the catalogue does not know {named}{more}")
    currency = tx.lines[0].unit_price.currency
    if any(line.unit_price.currency != currency for line in tx.lines):
        raise Rejected("mixed-currency", "lines in more than one currency")
    if currency != rules.currency:
        raise Rejected("wrong-currency", f"the store sells in {rules.currency}, not {currency}")
    if tx.occurred_at > now + timedelta(seconds=rules.clock_skew_s):
        raise Rejected("future-time", "occurred_at is ahead of the POS's clock")
    if any(line.discount > line.quantity * line.unit_price.amount for line in tx.lines):
        raise Rejected("bad-discount", "a discount larger than its line")
    if any(t.amount.currency != currency for t in tx.tenders):
        raise Rejected("mixed-currency", "a tender in another currency")
    if tx.kind == "sale":
        tendered = sum(t.amount.amount for t in tx.tenders)
        if tendered < total(tx).amount:
            raise Rejected(
                "unpaid", f"tenders ({tendered}) do not cover the total ({total(tx).amount})"
            )
    if tx.kind == "return" and tx.original_transaction_id is None:
        raise Rejected("no-receipt", "a return names the sale it returns (original_transaction_id)")


def check_return(tx: TillTransaction, sale: TillTransaction | None, returned: Counter[str]) -> None:
    """A till's return against its sale: the same store, lines that were sold, no more units
    than sold minus returned before (`returned`), at no higher price. A return whose sale has
    not synced yet (another till still offline) is refused with `sale-not-synced`: the till
    sends it again later; its sequence number stays a visible gap until then."""
    if sale is None:
        raise Rejected("sale-not-synced", "the sale it returns is not known yet; send it again")
    if sale.kind != "sale":
        raise Rejected("not-a-sale", "original_transaction_id names a return, not a sale")
    if sale.store_id != tx.store_id:
        raise Rejected("other-store", "the sale was rung up at another store")
    sold: Counter[str] = Counter()
    price: dict[str, int] = {}
    for line in sale.lines:
        sold[line.sku] += line.quantity
        price[line.sku] = max(price.get(line.sku, 0), line.unit_price.amount)
    wanted: Counter[str] = Counter()
    for line in tx.lines:
        wanted[line.sku] += line.quantity
        if line.sku not in sold:
            raise Rejected("not-on-sale", f"{line.sku} is not on the sale")
        if line.unit_price.amount > price[line.sku]:
            raise Rejected("higher-price", f"{line.sku} at more than the sale's price")
    for sku, units in wanted.items():
        if returned[sku] + units > sold[sku]:
            left = sold[sku] - returned[sku]
            raise Rejected("too-many-units", f"{units} of {sku} back; {left} left to return")
