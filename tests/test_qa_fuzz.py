"""A bounded pass of QA's run (`tests/qa_fuzz.py`, `make fuzz` for the long one): schemathesis
with every check, through the gateway of a real embedded mesh, a credential per role. Any
failure fails the suite; the data warnings (operations that random data did not reach) fail
only the long run, which has the examples to reach them."""

from __future__ import annotations

from tests.qa_fuzz import run

PHASES = ("examples", "coverage", "stateful")


def test_qa_fuzzing_through_the_gateway_finds_no_failure() -> None:
    # the fuzzing phase is left to `make fuzz`: tests/test_contracts_fuzz.py fuzzes every
    # operation through the gateway in make test already
    code, output = run(
        "embedded", max_examples=5, seed=20261130, strict=False, phases=",".join(PHASES)
    )
    assert code == 0, output[-20000:]
    assert "Tested:" in output, output[-5000:]
    for phase in PHASES:
        assert f"✅  {phase.title()}" in output or f"✅ {phase.title()}" in output, output[-8000:]
