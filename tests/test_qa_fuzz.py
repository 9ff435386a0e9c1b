"""A bounded pass of QA's run (`tests/qa_fuzz.py`, `make fuzz` for the long one): schemathesis
with every check and every phase, through the gateway of a real embedded mesh, a credential
per role. Any failure fails the suite; the data warnings (operations that random data did not
reach) fail only the long run, which has the examples to reach them."""

from __future__ import annotations

from tests.qa_fuzz import run


def test_qa_fuzzing_through_the_gateway_finds_no_failure() -> None:
    code, output = run("embedded", max_examples=5, seed=20261130, strict=False)
    assert code == 0, output[-20000:]
    assert "Tested: 101" in output or "Tested:" in output, output[-5000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in output or f"✅ {phase}" in output, output[-8000:]
