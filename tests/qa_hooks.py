"""Schemathesis hooks for QA's run (tests/qa_fuzz.py): what a client mints afresh for each new
request is fresh here too, as the contract asks: an `Idempotency-Key` ("unique per
checkout"), a posting's `posting_id` and a stock adjustment's `adjustment_id` (the poster's
own id: "the ERP stores each id once").

The fuzzer draws both from their patterns and draws the same few again and again ("0", an
example's), so most requests reused a key or an id with another body: 422
`idempotency-key-reused` or 409 `posting-conflict`, refusals about the key, and the checkout
or the posting behind was never reached. A value its pattern accepts is replaced, before
the call, by a fresh one; a value the pattern refuses (a negative case) is left as drawn, and
so is an absent one. Replays of one key or id, with the same body or another, are the
suite's to test (tests/services/orders/test_idempotency.py, tests/services/erp).

A pick-up is collected with its own code, which the customer shows at the till: where the
fuzzer draws a seeded ready pick-up and a seeded code (tests/qa_fuzz.py binds both), the code
is that pick-up's. Drawn apart, they missed most of the time, and five wrong codes lock a
pick-up, so whether a run ever collected one was left to chance. A code that is not a seeded
one is left as drawn: wrong codes are still sent and refused (403).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from functools import cache
from typing import Any

import schemathesis

from contracts.models import POSTING_ID_PATTERN
from services.kit.idempotency_key import IDEMPOTENCY_KEY_PATTERN

_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_POSTING_ID = re.compile(POSTING_ID_PATTERN)
#: the ERP's operations that take the caller's own id for what they book, by that id's field
_OWN_IDS = {
    "/postings/orders": "posting_id",
    "/postings/refunds": "posting_id",
    "/inventory/adjustments": "adjustment_id",
}


#: the environment variable naming the codes' file (tests/qa_fuzz.py PICKUP_CODES_ENV)
_PICKUP_CODES_ENV = "QA_PICKUP_CODES"


@cache
def _pickup_codes() -> dict[str, str]:
    path = os.environ.get(_PICKUP_CODES_ENV)
    if not path:
        return {}
    with open(path) as f:
        return dict(json.load(f))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and _KEY.fullmatch(value):
            headers[name] = f'"qa-{uuid.uuid4()}"'
    body = case.body
    field = next((f for suffix, f in _OWN_IDS.items() if case.path.endswith(suffix)), None)
    if field is not None and isinstance(body, dict):
        own = body.get(field)
        if isinstance(own, str) and _POSTING_ID.fullmatch(own):
            body[field] = f"qa-{uuid.uuid4().hex}"
    if case.path.endswith("/collect") and isinstance(body, dict):
        codes = _pickup_codes()
        order = (case.path_parameters or {}).get("order_id")
        if order in codes and body.get("pickup_code") in codes.values():
            body["pickup_code"] = codes[order]
