"""A contract test per channel: each documented example (contracts/examples.py) is valid for
its contract, is published in the gateway's spec, and has the shape of what the live API
answers (the same fields, nested alike), against the embedded mesh on a real socket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from contracts.care import AuditEntry, CareCustomer, CareSearch, CareView, Goodwill
from contracts.examples import EXAMPLES
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
from tests.modes import Mode, running_mode
from tests.support import settle_sync


@pytest.fixture(scope="module")
def mode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mode]:
    with running_mode("embedded", tmp_path_factory.mktemp("contracts")) as running:
        yield running


def _shape(value: Any) -> Any:
    """The structure of a JSON value: keys nested alike, lists by their first item."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def _documented(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """The example of `struct`, checked valid: a request example is accepted as it is (its
    contract refuses unknown fields); a response example is exactly what the contract writes
    (no field missing, none unknown)."""
    example = EXAMPLES[struct]
    value = msgspec.convert(example, struct)
    if not struct.__struct_config__.forbid_unknown_fields:
        assert msgspec.to_builtins(value) == example, struct.__name__
    return example


def _matches(struct: type[msgspec.Struct], answer: Any) -> None:
    """The live answer holds to the contract and has the documented example's shape."""
    msgspec.convert(answer.json(), struct)
    assert _shape(answer.json()) == _shape(_documented(struct)), struct.__name__


def _published(mode: Mode, *structs: type[msgspec.Struct]) -> None:
    schemas = mode.client.get("/openapi.json").json()["components"]["schemas"]
    for struct in structs:
        assert schemas[struct.__name__]["examples"] == [EXAMPLES[struct]], struct.__name__


def test_the_web_channels_examples(mode: Mode) -> None:
    _published(mode, WebProductV1, WebProductPageV1, WebProductV2, WebCheckoutRequest, Order)
    _published(mode, OrderReturnRequest, Return, LoyaltyAccount, Ledger)
    _matches(WebProductV1, mode.client.get("/v1/web/products/SKU-000005"))
    _matches(WebProductPageV1, mode.client.get("/v1/web/products", params={"limit": 1}))
    v2 = mode.client.get("/v2/web/products/SKU-000005", params={"store": "STORE-003"})
    _matches(WebProductV2, v2)
    alice = mode.token("alice", "orders:write", "orders:read", "orders:return")
    placed = mode.client.post(
        "/v2/web/checkout",
        json=_documented(WebCheckoutRequest),
        headers={**alice, "Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    assert placed.status_code == 201, placed.text
    oid = placed.json()["order_id"]
    posted = settle_sync(
        lambda: mode.client.get(f"/v2/web/orders/{oid}", headers=alice),
        lambda r: r.json()["status"] == "posted",
    )
    _matches(Order, posted)
    _matches(LoyaltyAccount, mode.client.get("/v2/web/loyalty", headers=alice))
    for step in ("ship", "deliver"):
        assert mode.client.post(f"/v1/orders/orders/{oid}/{step}", headers=mode.admin).is_success
    back = {**_documented(OrderReturnRequest), "order_id": oid}
    returned = mode.client.post(
        "/v2/web/returns", json=back, headers={**alice, "Idempotency-Key": f'"{uuid.uuid4()}"'}
    )
    assert returned.status_code == 201, returned.text
    rid = returned.json()["return_id"]
    refunded = settle_sync(
        lambda: mode.client.get(f"/v2/web/returns/{rid}", headers=alice),
        lambda r: r.json()["status"] == "refunded",
    )
    _matches(Return, refunded)
    _matches(Ledger, mode.client.get("/v2/web/loyalty/ledger", headers=alice))


def test_the_store_channels_examples(mode: Mode) -> None:
    _published(mode, StoreStock, TillMember, MemberLookup, TransactionBatch, BatchResult)
    _published(mode, CollectRequest)
    _documented(CollectRequest)  # a code is the customer's: no live hand-over here
    scopes = ("inventory:read", "loyalty:lookup", "pos:write")
    till = mode.token("till-2", *scopes, store_id="STORE-002")
    _matches(StoreStock, mode.client.get("/v1/store/stock/SKU-000005", headers=till))
    member = mode.client.post(
        "/v1/store/members/lookup", json=_documented(MemberLookup), headers=till
    )
    _matches(TillMember, member)
    uploaded = mode.client.post(
        "/v1/store/transactions/batches", json=_documented(TransactionBatch), headers=till
    )
    _matches(BatchResult, uploaded)


def test_the_partner_channels_examples(mode: Mode) -> None:
    _published(mode, PartnerAvailability, PartnerOrderRequest)
    partner = f"p-{uuid.uuid4().hex[:8]}"
    assert mode.client.post(
        "/admin/v1/partners", json={"id": partner, "name": "Market"}, headers=mode.admin
    ).is_success
    key = {
        "X-API-Key": mode.client.post(
            "/admin/v1/keys",
            json={"partner_id": partner, "scopes": ["inventory:read", "partner:orders"]},
            headers=mode.admin,
        ).json()["key"]
    }
    bulk = mode.client.get(
        "/v1/partner/availability", params={"skus": "SKU-000001,SKU-000002"}, headers=key
    )
    _matches(PartnerAvailability, bulk)
    placed = mode.client.post(
        "/v1/partner/orders",
        json=_documented(PartnerOrderRequest),
        headers={**key, "Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    assert placed.status_code == 201, placed.text
    assert msgspec.convert(placed.json(), Order).partner_id == partner


def test_the_care_channels_examples(mode: Mode) -> None:
    _published(mode, CareSearch, CareCustomer, Goodwill, AuditEntry, CareView)
    agent = mode.token("agent-ann", "care:read")
    supervisor = mode.token("sup-sam", "care:read", "care:write")
    found = mode.client.post(
        "/v1/care/customers/search", json=_documented(CareSearch), headers=agent
    )
    _matches(CareCustomer, found)
    view = mode.client.get(
        "/v1/care/customers/alice", params={"reason": "call 4711"}, headers=agent
    )
    assert view.status_code == 200, view.text
    msgspec.convert(view.json(), CareView)  # its lists vary with the customer's history
    assert set(view.json()) == set(_documented(CareView))
    given = mode.client.post(
        "/v1/care/customers/alice/goodwill",
        json=_documented(Goodwill),
        headers={**supervisor, "Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    _matches(LoyaltyAccount, given)
    audit = mode.client.get(
        "/v1/care/audit", params={"customer": "alice", "limit": 50}, headers=supervisor
    )
    viewed = next(e for e in audit.json()["items"] if e["action"] == "view")
    assert _shape(viewed) == _shape(_documented(AuditEntry))
    msgspec.convert(viewed, AuditEntry)


def test_every_example_is_valid_for_its_contract() -> None:
    for struct in EXAMPLES:
        _documented(struct)


def test_the_examples_of_requests_with_rules_beyond_the_schema_are_accepted(mode: Mode) -> None:
    """A posting whose amounts add up, a checkout of catalogue SKUs: as documented, they work
    (a client, or a fuzzer's examples phase, starts from them)."""
    _published(mode, OrderPosting, RefundPosting, CheckoutRequest)
    poster = mode.token("erp-poster", "erp:post")
    for path, struct in (("orders", OrderPosting), ("refunds", RefundPosting)):
        booked = mode.client.post(
            f"/v1/erp/postings/{path}", json=_documented(struct), headers=poster
        )
        assert booked.status_code in (200, 201), booked.text  # 200: booked by an earlier test
    alice = mode.token("alice", "orders:write")
    placed = mode.client.post(
        "/v1/orders/orders",
        json=_documented(CheckoutRequest),
        headers={**alice, "Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    assert placed.status_code == 201, placed.text
