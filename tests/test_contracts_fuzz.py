"""Schemathesis against the gateway's published OpenAPI, in-process, positive and negative.

Fails on any 5xx, any response that does not match its documented schema, status or
content type, and any malformed request that is accepted. `make test` runs a bounded pass;
`make fuzz` a long one (FUZZ_MAX_EXAMPLES).
"""

from __future__ import annotations

import os
import tempfile

import schemathesis
from schemathesis import GenerationMode

from services.mesh import build_embedded
from tests.conftest import dev_issuer
from tests.support import ensure_redis, unique

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30"))

# Loaded at import: schemathesis parametrizes one test per operation at collection time.
ENV = {
    "DATA_DIR": tempfile.mkdtemp(prefix="rm-fuzz-"),
    "REDIS_URL": ensure_redis(),
    "REDIS_PREFIX": unique("rmfuzz:") + ":",
    "LOG_LEVEL": "ERROR",
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
    case.call_and_validate(headers=ADMIN)
