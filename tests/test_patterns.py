r"""A pattern refuses what its published form refuses. The code's patterns end with `\Z`:
Python's `$` (msgspec and Litestar search with `re`) also matches before a final newline,
so "SKU-000001\n" was a SKU to the code and not to the spec, whose `$` is ECMA's. The spec
publishes `\Z` as `$`, and a pattern ending with a bare `$` is refused when it is published."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from contracts.bounds import publish_patterns
from tests.conftest import Running


def test_a_pattern_is_published_as_a_json_schema_reads_it() -> None:
    schema: dict[str, Any] = {
        "properties": {"sku": {"type": "string", "pattern": r"^[A-Z]{3}\Z"}},
        "examples": [{"pattern": r"^data\Z"}],
    }
    publish_patterns(schema)
    assert schema["properties"]["sku"]["pattern"] == "^[A-Z]{3}$"
    assert schema["examples"] == [{"pattern": r"^data\Z"}]  # an example is data, not a rule
    with pytest.raises(ValueError, match="Z"):
        publish_patterns({"items": {"pattern": "^[A-Z]{3}$"}})


async def test_a_final_newline_is_refused_as_the_spec_says(mesh: Running, bearer: Any) -> None:
    caller = bearer("pat", "inventory:read", "inventory:reserve")

    def reservation(sku: str) -> dict[str, Any]:
        return {
            "reservation_id": "pat-1",
            "sku": sku,
            "quantity": 1,
            "owner": "pat",
            "location_id": "DC-NORTH",
        }

    for sku in ("SKU-000001\n", "SKU-000001\r\n"):
        refused = await mesh.client.post(
            "/v1/inventory/reservations", json=reservation(sku), headers=caller
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["type"].endswith("/validation")
        # the field error quotes the pattern as the spec has it
        assert refused.json()["errors"][0]["message"].endswith("{2,31}$'"), refused.text
        path = await mesh.client.get(f"/v1/inventory/availability/{quote(sku)}", headers=caller)
        assert path.status_code == 400, path.text
        assert "\\Z" not in path.text, path.text
    # the same without the newline gets past validation (whatever the stock says)
    taken = await mesh.client.post(
        "/v1/inventory/reservations", json=reservation("SKU-000001"), headers=caller
    )
    assert taken.status_code != 400, taken.text
    read = await mesh.client.get("/v1/inventory/availability/SKU-000001", headers=caller)
    assert read.status_code != 400, read.text
