"""Documented examples of the experience APIs' bodies, one per contract: published in the
OpenAPI documents (each schema's `examples`), so that a developer sees a real answer in the
docs page, and checked by the contract tests (tests/test_channel_contracts.py): each example
is valid for its contract, and has the shape of what the live API answers.

Requests whose rules JSON Schema cannot state (a posting's amounts add up, a checkout names
SKUs of the catalogue) have one too: one a seeded mesh accepts as it is, so that a client, or
a fuzzer's examples phase, starts from a request that works."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.care import AuditEntry, CareCustomer, CareSearch, CareView, Goodwill
from contracts.models import (
    BatchResult,
    CheckoutRequest,
    CollectRequest,
    Ledger,
    LoyaltyAccount,
    MemberLookup,
    Order,
    OrderReturnRequest,
    Return,
    TransactionBatch,
)
from contracts.partner import PartnerAvailability, PartnerOrderRequest
from contracts.postings import OrderPosting, RefundPosting
from contracts.store import StoreStock, TillMember
from contracts.web import WebCheckoutRequest, WebProductPageV1, WebProductV1, WebProductV2

__all__ = ["EXAMPLES"]

_PRICE = {"amount": 17499, "currency": "EUR"}
_PRODUCT_V1 = {
    "sku": "SKU-000005",
    "name": "Soft Jacket 5",
    "category": "apparel",
    "price": _PRICE,
    "quantity": 3113,
    "in_stock": True,
}
_ORDER_ID = "ord-2642ab22be9248b6b44155f57701921a"
#: two units at 19.99 less 5.00, from the north distribution centre
_POSTING_LINE = {
    "sku": "SKU-000001",
    "location_id": "DC-NORTH",
    "quantity": 2,
    "unit_price": {"amount": 1999, "currency": "EUR"},
    "discount": 500,
}
_ORDER = {
    "order_id": _ORDER_ID,
    "status": "posted",
    "customer": "alice",
    "channel": "web",
    "fulfilment": "ship",
    "lines": [
        {
            "sku": "SKU-000005",
            "quantity": 1,
            "unit_price": _PRICE,
            "location_id": "DC-NORTH",
        }
    ],
    "total": _PRICE,
    "payment_reference": "psp-web-1",
    "created_at": "2026-11-30T16:28:53.741359Z",
    "updated_at": "2026-11-30T16:28:53.797741Z",
    "member_id": "M-ALICE",
    "points_redeemed": 500,
    "history": [
        {"status": "pending", "at": "2026-11-30T16:28:53.741359Z"},
        {"status": "confirmed", "at": "2026-11-30T16:28:53.776832Z"},
        {"status": "posted", "at": "2026-11-30T16:28:53.797741Z"},
    ],
}
_LEDGER = {
    "member_id": "M-ALICE",
    "entries": [
        {
            "kind": "adjust",
            "points": 2500,
            "source_id": "welcome-M-ALICE",
            "created_at": "2026-11-30T16:28:38.055541Z",
            "by": "service:seed",
            "reason": "welcome",
        },
        {
            "kind": "redeem",
            "points": -500,
            "source_id": f"{_ORDER_ID}.points",
            "created_at": "2026-11-30T16:28:53.774273Z",
            "by": None,
            "reason": None,
        },
    ],
}
_RETURN = {
    "return_id": "ret-23c6f457b9974768b84ca127a96ecfd3",
    "status": "refunded",
    "customer": "alice",
    "lines": [
        {
            "sku": "SKU-000005",
            "quantity": 1,
            "disposition": "restock",
            "unit_price": _PRICE,
            "discount": 0,
            "location_id": "DC-NORTH",
        }
    ],
    "refund": _PRICE,
    "created_at": "2026-11-30T16:28:54.462135Z",
    "updated_at": "2026-11-30T16:28:54.501220Z",
    "order_id": _ORDER_ID,
    "member_id": "M-ALICE",
    "points_returned": 500,
    "reason": "too big",
}
_SALE_ID = "5f0c6d1e-8a4b-4c1e-9a77-2b9d1f3e4a01"

#: contract → one example of it
EXAMPLES: dict[type[msgspec.Struct], dict[str, Any]] = {
    WebProductV1: _PRODUCT_V1,
    WebProductPageV1: {"items": [_PRODUCT_V1], "next_cursor": "SKU-000005"},
    WebProductV2: {
        "sku": "SKU-000005",
        "name": "Soft Jacket 5",
        "category": "apparel",
        "price": _PRICE,
        "ship": {"quantity": 3113, "in_stock": True},
        "pickup": [
            {
                "store_id": "STORE-003",
                "name": "Utrecht Hoog Catharijne",
                "distance_km": 0.0,
                "quantity": 30,
                "in_stock": True,
            },
            {
                "store_id": "STORE-001",
                "name": "Amsterdam Centraal",
                "distance_km": 35.3,
                "quantity": 7,
                "in_stock": True,
            },
        ],
        "near": "STORE-003",
    },
    WebCheckoutRequest: {
        "lines": [{"sku": "SKU-000005", "quantity": 1}],
        "payment_reference": "psp-web-1",
        "member_id": "M-ALICE",
        "redeem": {"member_id": "M-ALICE", "points": 500},
    },
    Order: _ORDER,
    Return: _RETURN,
    Ledger: _LEDGER,
    CheckoutRequest: {
        "lines": [{"sku": "SKU-000005", "quantity": 1}],
        "payment_reference": "psp-web-2",
        "channel": "web",
        "fulfilment": "ship",
    },
    OrderPosting: {
        "posting_id": "so-example-1",
        "order_id": "order-example-1",
        "lines": [_POSTING_LINE],
        "total": {"amount": 2 * 1999 - 500, "currency": "EUR"},
        "occurred_at": "2026-11-30T10:00:00Z",
    },
    RefundPosting: {
        "posting_id": "cr-example-1",
        "order_id": "order-example-1",
        "lines": [{**_POSTING_LINE, "quantity": 1, "discount": 250}],
        "amount": {"amount": 1999 - 250, "currency": "EUR"},
        "occurred_at": "2026-11-30T11:00:00Z",
    },
    OrderReturnRequest: {
        "order_id": _ORDER_ID,
        "lines": [{"sku": "SKU-000005", "quantity": 1}],
        "reason": "too big",
    },
    LoyaltyAccount: {
        "member_id": "M-ALICE",
        "tier": "gold",
        "balance": 2500,
        "held": 0,
        "available": 2500,
    },
    StoreStock: {
        "sku": "SKU-000005",
        "stores": [
            {
                "store_id": "STORE-002",
                "name": "Rotterdam Lijnbaan",
                "distance_km": 0.0,
                "quantity": 20,
                "in_stock": True,
            },
            {
                "store_id": "STORE-003",
                "name": "Utrecht Hoog Catharijne",
                "distance_km": 47.4,
                "quantity": 30,
                "in_stock": True,
            },
        ],
    },
    TillMember: {"member_id": "M-ALICE", "tier": "gold"},
    MemberLookup: {"email": "alice@example.com"},
    CollectRequest: {"pickup_code": "482913"},
    TransactionBatch: {
        "transactions": [
            {
                "transaction_id": _SALE_ID,
                "kind": "sale",
                "store_id": "STORE-002",
                "till_id": "T1",
                "sequence": 1,
                "occurred_at": "2026-11-30T09:00:00Z",
                "lines": [{"sku": "SKU-000005", "quantity": 1, "unit_price": _PRICE}],
                "tenders": [{"kind": "card", "amount": _PRICE}],
            }
        ]
    },
    BatchResult: {
        "accepted": 1,
        "duplicates": 0,
        "rejected": 0,
        "results": [{"transaction_id": _SALE_ID, "status": "accepted"}],
    },
    PartnerAvailability: {
        "items": [
            {"sku": "SKU-000001", "quantity": 284, "in_stock": True},
            {"sku": "SKU-000002", "quantity": 554, "in_stock": True},
        ],
        "unknown_skus": [],
    },
    PartnerOrderRequest: {
        "customer_ref": "buyer-77",
        "lines": [{"sku": "SKU-000001", "quantity": 2}],
        "payment_reference": "mkt-pay-1",
    },
    CareSearch: {"email": "alice@example.com", "reason": "call 4711: where is my order"},
    CareCustomer: {"customer": "alice", "member_id": "M-ALICE", "email_masked": "a***@example.com"},
    Goodwill: {"points": 100, "reason": "call 4711: sorry for the wait"},
    CareView: {
        "customer": "alice",
        "member": {
            "member_id": "M-ALICE",
            "tier": "gold",
            "customer_sub": "alice",
            "email_masked": "a***@example.com",
            "balance": 2000,
            "held": 0,
            "available": 2000,
        },
        "email": None,
        "ledger": _LEDGER["entries"],
        "orders": [
            {
                "order": _ORDER,
                "postings": [
                    {
                        "posting_id": _ORDER_ID,
                        "kind": "order",
                        "order_id": _ORDER_ID,
                        "document_number": "SO-000042",
                        "booked_at": "2026-11-30T16:28:53.795012Z",
                        "occurred_at": "2026-11-30T16:28:53.776832Z",
                        "amount": _PRICE,
                        "lines": [
                            {
                                "sku": "SKU-000005",
                                "location_id": "DC-NORTH",
                                "quantity": 1,
                                "unit_price": _PRICE,
                                "discount": 0,
                            }
                        ],
                    }
                ],
                "returns": [],
            }
        ],
    },
    AuditEntry: {
        "at": "2026-11-30T16:55:43.723967Z",
        "agent": "agent-ann",
        "action": "view",
        "customer": "alice",
        "subject": None,
        "reason": "call 4711: where is my order",
        "outcome": "found",
    },
}
