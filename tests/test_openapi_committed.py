"""The committed OpenAPI documents are what the code generates: a drift fails the build."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import generated_specs


def test_committed_specs_match_the_code() -> None:
    generated = generated_specs()
    assert set(generated) == {p.name for p in Path("openapi").glob("*.json")}
    for name, text in generated.items():
        committed = (Path("openapi") / name).read_text()
        if committed != text:
            pytest.fail(f"openapi/{name} is stale: run `make openapi` and commit the result")
