"""A Python client generated from the published external spec by openapi-python-client,
without a warning, runs the README's web-shop story against a real embedded mesh: a product
page with pick-up, a checkout as alice (replayed with its Idempotency-Key), her orders and her
points. What a partner's or a shop's developer would build against the spec."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.modes import running_mode

SPEC = Path(__file__).parent.parent / "openapi/gateway.json"
PACKAGE = "retailmesh_gateway_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    out = tmp_path_factory.mktemp("client") / "out"
    config = out.parent / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run over the generated code
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            str(SPEC),
            "--output-path",
            str(out),
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "warning" not in said.lower(), said
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
            del sys.modules[name]


def _api(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.web_v2.{name}")


def test_the_readme_web_shop_story_through_a_generated_client(
    generated: ModuleType, tmp_path: Path
) -> None:
    with running_mode("embedded", tmp_path) as mode:
        alice = mode.issuer.mint("alice", scopes=["orders:write", "orders:read", "orders:return"])
        with (
            generated.AuthenticatedClient(base_url=mode.gateway.url, token=alice) as shopper,
            generated.Client(base_url=mode.gateway.url) as visitor,
        ):
            _story(importlib.import_module(f"{PACKAGE}.models"), shopper, visitor)


def _story(models: ModuleType, shopper: Any, visitor: Any) -> None:
    page = _api("v_2_web_v2_products_sku_one").sync_detailed(
        "SKU-000005", client=visitor, store="STORE-003"
    )
    assert page.status_code == 200, page.content
    product = page.parsed
    assert isinstance(product, models.WebProductV2)
    assert product.sku == "SKU-000005" and product.pickup[0].store_id == "STORE-003"

    cart = models.WebCheckoutRequest(
        lines=[models.OrderLineIn(sku="SKU-000005", quantity=1)],
        payment_reference="psp-generated-1",
    )
    checkout = _api("v_2_web_v2_checkout_checkout")
    placed = checkout.sync_detailed(client=shopper, body=cart, idempotency_key='"gc-1"')
    assert placed.status_code == 201, placed.content
    order = placed.parsed
    assert isinstance(order, models.Order) and order.customer == "alice"
    assert order.total.amount == product.price.amount
    again = checkout.sync_detailed(client=shopper, body=cart, idempotency_key='"gc-1"')
    assert again.status_code == 201 and again.parsed.order_id == order.order_id

    mine = _api("v_2_web_v2_orders_orders").sync_detailed(client=shopper)
    assert mine.status_code == 200
    assert order.order_id in [o.order_id for o in mine.parsed.items]
    one = _api("v_2_web_v2_orders_order_id_order").sync_detailed(order.order_id, client=shopper)
    assert one.status_code == 200 and one.parsed.order_id == order.order_id

    points = _api("v_2_web_v2_loyalty_points").sync_detailed(client=shopper)
    assert points.status_code == 200, points.content
    assert isinstance(points.parsed, models.LoyaltyAccount)
    assert points.parsed.member_id == "M-ALICE"

    # a refusal arrives as the documented problem, typed
    nobody = _api("v_2_web_v2_orders_orders").sync_detailed(client=visitor)
    assert nobody.status_code == 401 and isinstance(nobody.parsed, models.Problem)
