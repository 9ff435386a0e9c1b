"""Bad input gets a clear 4xx problem+json with the offending fields, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contracts.problems import MAX_DETAIL, MAX_ERRORS, MAX_FIELD, Problem, clipped
from services.erp.app import ErpSettings, create_app
from services.kit.errors import Conflict
from services.kit.identity import IDENTITY_HEADER, Identity
from tests.conftest import Running


@pytest.fixture
async def erp(tmp_path: Path) -> AsyncIterator[Running]:
    async with Running(create_app(ErpSettings(data_dir=str(tmp_path), redis_mode="off"))) as r:
        caller = Identity(
            kind="service", consumer="test", scopes=frozenset({"erp:post", "erp:ledger"})
        )
        r.client.headers[IDENTITY_HEADER] = r.app.state.runtime.identity.sign(caller)
        yield r


def good_posting() -> dict[str, Any]:
    return {
        "posting_id": "p-1",
        "order_id": "o-1",
        "lines": [
            {
                "sku": "SKU-000001",
                "location_id": "STORE-001",
                "quantity": 1,
                "unit_price": {"amount": 100, "currency": "EUR"},
            }
        ],
        "total": {"amount": 100, "currency": "EUR"},
        "occurred_at": "2026-11-24T10:00:00Z",
    }


def assert_problem(r: Any, status: int, type_suffix: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + type_suffix)
    assert body["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text
    return body


async def test_malformed_json(erp: Running) -> None:
    r = await erp.client.post(
        "/postings/orders", content=b'{"posting_id": ', headers={"content-type": "application/json"}
    )
    assert_problem(r, 400, "bad-request")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.update(total={"amount": "100", "currency": "EUR"}), "total.amount"),
        (lambda p: p.update(surprise=True), "surprise"),
        (lambda p: p["lines"][0].update(quantity=10**30), "lines[0].quantity"),
        (lambda p: p["lines"][0].update(quantity=0), "lines[0].quantity"),
        (lambda p: p.update(lines=[]), "lines"),
        (lambda p: p.update(occurred_at="2026-11-24T10:00:00"), "occurred_at"),
        (
            lambda p: p["lines"][0]["unit_price"].update(currency="euro"),
            "lines[0].unit_price.currency",
        ),
        (lambda p: p.pop("total"), "total"),
    ],
)
async def test_invalid_fields_are_named(erp: Running, mutate: Any, field: str) -> None:
    body = good_posting()
    mutate(body)
    r = await erp.client.post("/postings/orders", json=body)
    problem = assert_problem(r, 400, "validation")
    assert any(field in e["field"] or field in e["message"] for e in problem["errors"]), problem
    # nothing was booked
    assert (await erp.client.get("/postings/p-1")).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/products/lower-case",
        "/products/%00",
        "/postings/" + "x" * 200,
        "/products?limit=0",
        "/products?limit=1e3",
    ],
)
async def test_bad_path_and_query_parameters(erp: Running, path: str) -> None:
    assert_problem(await erp.client.get(path), 400, "validation")


async def test_unknown_route_and_method(erp: Running) -> None:
    assert_problem(await erp.client.get("/nothing/here"), 404, "not-found")
    r = await erp.client.delete("/products/SKU-000001")
    assert_problem(r, 405, "method-not-allowed")
    assert "GET" in r.headers["allow"]


async def test_oversized_body_is_413(erp: Running) -> None:
    body = b'{"skus": [' + b'"SKU-000001",' * 100_000 + b'"SKU-000001"]}'
    r = await erp.client.post(
        "/inventory/query", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(r, 413, "payload-too-large")


async def test_request_id_is_echoed_by_services(erp: Running) -> None:
    r = await erp.client.get("/healthz", headers={"x-request-id": "till-7-req-000123"})
    assert r.headers["x-request-id"] == "till-7-req-000123"


async def test_a_repeated_query_parameter_is_refused(erp: Running) -> None:
    r = await erp.client.get("/products?limit=5&limit=500")
    problem = assert_problem(r, 400, "validation")
    assert problem["errors"] == [
        {"field": "limit", "message": "given more than once", "source": "query"}
    ]


def _app_raising(tmp_path: Path, error: Exception) -> Any:
    """A service app with one route, `GET /fail`, that raises `error`."""
    from litestar import get

    from services.kit.app import Runtime, create_service_app
    from services.kit.settings import Settings

    @get("/fail", sync_to_thread=False)
    def fail() -> None:
        raise error

    settings = Settings(data_dir=str(tmp_path), redis_mode="off")
    runtime = Runtime("fail", settings, None)
    return create_service_app(
        "fail",
        settings,
        title="fail",
        description="",
        route_handlers=[fail],
        runtime=runtime,
        require_identity=False,
    )


async def test_an_unhandled_error_is_500_and_its_log_line_has_the_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Running(_app_raising(tmp_path, RuntimeError("secret internals"))) as running:
        r = await running.client.get("/fail", headers={"x-request-id": "req-boom-0001"})
    problem = assert_problem(r, 500, "internal")
    assert "secret internals" not in r.text and problem["request_id"] == "req-boom-0001"
    logged = [rec for rec in caplog.records if rec.getMessage() == "unhandled error"]
    assert [getattr(rec, "request_id", None) for rec in logged] == ["req-boom-0001"]


async def test_a_database_that_does_not_answer_is_503_with_retry_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.exc import OperationalError

    full = OperationalError("INSERT ...", {}, Exception("database or disk is full"))
    async with Running(_app_raising(tmp_path, full)) as running:
        r = await running.client.get("/fail", headers={"x-request-id": "req-full-0001"})
    problem = assert_problem(r, 503, "store-unavailable")
    assert r.headers["retry-after"] == "1" and "disk" not in r.text
    assert problem["request_id"] == "req-full-0001"
    assert any(getattr(rec, "request_id", None) == "req-full-0001" for rec in caplog.records)


@pytest.mark.parametrize("slow", ["pool", "command"])
async def test_a_store_that_does_not_answer_in_time_is_503_with_retry_after(
    tmp_path: Path, slow: str
) -> None:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    error = PoolTimeout("QueuePool limit reached") if slow == "pool" else TimeoutError()
    async with Running(_app_raising(tmp_path, error)) as running:
        r = await running.client.get("/fail")
    assert_problem(r, 503, "store-unavailable")
    assert r.headers["retry-after"] == "1"


def test_a_problem_stays_within_its_published_bounds() -> None:
    # a detail or a field error may quote what a client sent: cut, never past the schema
    long = Conflict("x" * 5000, errors=[{"field": "f" * 500, "message": "m" * 5000}] * 150)
    problem = long.problem()
    assert problem.detail is not None and len(problem.detail) == MAX_DETAIL
    assert problem.detail.endswith("…")
    assert problem.errors is not None and len(problem.errors) == MAX_ERRORS
    assert len(problem.errors[0].field) == MAX_FIELD
    assert len(problem.errors[0].message) == MAX_DETAIL
    msgspec.json.decode(msgspec.json.encode(problem), type=Problem)  # the schema's bounds
    assert clipped("short") == "short"
