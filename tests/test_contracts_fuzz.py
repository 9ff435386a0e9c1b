"""Schemathesis against the gateway's published OpenAPI, in-process, positive and negative.

Fails on any 5xx, any response that does not match its documented schema, status or
content type, and any malformed request that is accepted. `make test` runs a bounded pass;
`make fuzz` a long one (FUZZ_MAX_EXAMPLES).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis import GenerationMode

from contracts.problem_types import by_slug
from contracts.problems import PROBLEM_TYPE_BASE
from services.mesh import build_embedded
from tests.conftest import dev_issuer
from tests.modes import forget_keys
from tests.qa_fuzz import qa_config
from tests.support import ensure_redis, unique

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30"))

# Loaded at import: schemathesis parametrizes one test per operation at collection time.
DATA_DIR = Path(tempfile.mkdtemp(prefix="rm-fuzz-"))
# QA's environment (tests/qa_fuzz.qa_config): the published config, with room for a fuzzer's
# pace on every plan, the anonymous one too (it calls every operation without credentials,
# thousands of times a minute, and refused credentials count against the anonymous plan; a
# long run used up its day, and answered 429 where the spec says 401). The limits themselves
# are tested in tests/gateway/test_limits*.py and tests/test_modes.py.
QA_CONFIG = DATA_DIR / "gateway.toml"
QA_CONFIG.write_text(
    qa_config((Path(__file__).parent.parent / "deploy/config/gateway.toml").read_text())
)
assert "[plans.free]\nburst_per_second = 20000\n" in QA_CONFIG.read_text()
ENV = {
    "DATA_DIR": str(DATA_DIR / "data"),
    "REDIS_URL": ensure_redis(),
    "REDIS_PREFIX": unique("rmfuzz:") + ":",
    "LOG_LEVEL": "ERROR",
    "GATEWAY_CONFIG": str(QA_CONFIG),
}
app = build_embedded(ENV)
# An operator's token reaches every operation; schemathesis also tries them without it.
ADMIN = {"Authorization": "Bearer " + dev_issuer(ENV).mint("qa", roles=["admin"], ttl_s=7200)}
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    database="none",
    # Unknown query parameters are ignored, as most HTTP APIs do; unknown body fields are
    # refused (the request Structs forbid them), and that the negative mode does check.
    allow_extra_parameters=False,
)


@schema.parametrize()
def test_every_published_operation_survives_fuzzing(case: schemathesis.Case) -> None:
    response = case.call_and_validate(headers=ADMIN)
    headers = {name.lower(): values for name, values in response.headers.items()}
    if headers.get("content-type", [""])[0].startswith("application/problem+json"):
        # every problem the fuzzer meets is a type of the catalogue, with its status and title
        problem = response.json()
        entry = by_slug(problem["type"].removeprefix(PROBLEM_TYPE_BASE))
        assert entry is not None, problem
        assert (entry.status, entry.title) == (problem["status"], problem["title"]), problem


@pytest.fixture(scope="module", autouse=True)
def _forget_the_fuzzers_keys() -> Iterator[None]:
    """What the fuzzed mesh wrote to Redis goes when the module ends (its own prefix only)."""
    yield
    forget_keys(ENV["REDIS_URL"], ENV["REDIS_PREFIX"])
