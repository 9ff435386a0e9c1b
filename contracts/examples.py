"""Documented examples of the experience APIs' bodies, one per contract: published in the
OpenAPI documents (each schema's `examples`), so that a developer sees a real answer in the
docs page, and checked by the contract tests (tests/test_channel_contracts.py): each example
is valid for its contract, and has the shape of what the live API answers."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.care import AuditEntry, CareCustomer, CareSearch, Goodwill
from contracts.models import CheckoutRequest, LoyaltyAccount, Order, OrderReturnRequest
from contracts.partner import PartnerAvailability, PartnerOrderRequest
from contracts.store import StoreStock, TillMember
from contracts.web import WebProductPageV1, WebProductV1, WebProductV2

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
    CheckoutRequest: {
        "lines": [{"sku": "SKU-000005", "quantity": 1}],
        "payment_reference": "psp-web-1",
        "member_id": "M-ALICE",
        "redeem": {"member_id": "M-ALICE", "points": 500},
    },
    Order: {
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
