"""Postings booked from event handlers share batch calls to the real ERP (embedded mesh),
and each handler learns what became of its own posting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest

from contracts.models import Money
from contracts.postings import OrderPosting, PostingLine
from services.kit.erp_postings import ErpPostings
from services.kit.events import RetryLater, Undeliverable
from services.kit.identity import Identity, IdentityCodec
from services.kit.registry import HttpClient
from tests.conftest import Running
from tests.support import free_port

POSTER = Identity(kind="service", consumer="test", scopes=frozenset({"erp:post"}))


def order(posting_id: str, quantity: int = 1, total: int | None = None) -> OrderPosting:
    return OrderPosting(
        posting_id=posting_id,
        order_id=posting_id,
        lines=[
            PostingLine(
                sku="SKU-000002",
                location_id="STORE-001",
                quantity=quantity,
                unit_price=Money(500, "EUR"),
            )
        ],
        total=Money(500 * quantity if total is None else total, "EUR"),
        occurred_at=datetime(2026, 11, 24, 9, tzinfo=UTC),
    )


def postings_of(mesh: Running) -> ErpPostings:
    return ErpPostings(mesh.app.registry.client("erp"), mesh.app.runtime.identity, POSTER)


async def test_concurrent_postings_go_in_one_call_and_each_gets_its_receipt(
    mesh: Running,
) -> None:
    erp = postings_of(mesh)
    receipts = await asyncio.gather(*(erp.book(order(f"co-{n}")) for n in range(40)))
    assert [r.posting_id for r in receipts] == [f"co-{n}" for n in range(40)]
    assert len({r.document_number for r in receipts}) == 40
    assert erp.calls == 1
    again = await asyncio.gather(*(erp.book(order(f"co-{n}")) for n in range(40)))
    assert again == receipts  # booked before: the same receipts, nothing twice


async def test_a_refused_posting_fails_its_handler_alone(mesh: Running) -> None:
    erp = postings_of(mesh)
    results = await asyncio.gather(
        erp.book(order("rf-good-1")),
        erp.book(order("rf-bad-sum", total=1)),  # the ERP refuses it (422)
        erp.book(order("rf-good-2")),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == [
        "PostingReceipt",
        "Undeliverable",
        "PostingReceipt",
    ]
    assert "rf-bad-sum" in str(results[1])


async def test_a_batch_the_erp_refuses_whole_is_sent_again_one_by_one(mesh: Running) -> None:
    """A posting that breaks the batch's schema (the ERP answers 400 for the whole call)
    sends only that one to the dead letters."""
    erp = postings_of(mesh)
    results = await asyncio.gather(
        erp.book(order("sw-good-1")),
        erp.book(order("sw-bad-quantity", quantity=0)),  # below the schema's minimum
        erp.book(order("sw-good-2")),
        return_exceptions=True,
    )
    assert isinstance(results[1], Undeliverable)
    assert [r.posting_id for r in (results[0], results[2])] == ["sw-good-1", "sw-good-2"]  # type: ignore[union-attr]
    assert erp.calls == 1  # then one by one, outside the coalesced calls


async def test_an_erp_that_does_not_answer_is_retried_later() -> None:
    """Nobody listens on the port: "not now" (the event stays, for days), never a dead letter."""
    async with aiohttp.ClientSession() as session:
        nobody = HttpClient("erp", f"http://127.0.0.1:{free_port()}", session, timeout=2.0)
        erp = ErpPostings(nobody, IdentityCodec(b"k" * 32), POSTER)
        with pytest.raises(RetryLater):
            await erp.book(order("ul-1"))
