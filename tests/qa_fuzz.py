"""QA's run: schemathesis, every check and every phase (examples, coverage, fuzzing, stateful
over the spec's links), against the gateway's published spec, through the gateway, with a
credential per role, as a QA engineer would point it at a mesh:

    .venv/bin/python -m tests.qa_fuzz [--mode embedded|mesh] [--max-examples N] [--seed S]

`make fuzz` runs it long in both modes; `tests/test_qa_fuzz.py` runs a bounded pass in `make
test`. The mesh is started here on a private data dir and Redis prefix, on the published
gateway config with the plans' limits raised to a fuzzer's pace (the limits are tested in
`tests/gateway/test_limits*.py` and `tests/test_modes.py`). Credentials, per role, by path:

- a customer (alice, the demo member M-ALICE) on the web shop;
- a till of STORE-002 on the store API;
- a partner's token (its partner registered here through the admin API) on the partner API;
- a customer-service supervisor on the care API;
- an operator everywhere else (the system and process APIs, the gateway's admin API).

Schema-valid input may break a business rule (an unknown SKU, amounts that do not add up,
points a member does not have): the spec documents those as 409 or 422 with their problem
types. It is never refused as invalid (400): that would mean the spec and the code disagree,
and it fails the run, as do the warnings that say the same ("schema validation mismatch") or
that an operation was never reached with data that exists ("missing test data").
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.modes import Mode, running_mode

__all__ = ["qa_config", "run"]

SHOPPER = ["orders:write", "orders:read", "orders:return"]
TILL = ["pos:write", "orders:pickup", "inventory:read", "orders:return", "loyalty:lookup"]
PARTNER = ["erp:stock", "inventory:read", "inventory:reserve", "partner:orders"]
CARE = ["care:read", "care:write"]
#: what a positive (schema-valid) case may be answered, besides success
BUSINESS_STATUSES = ["2xx", "3xx", "403", "404", "409", "422"]


def qa_config(text: str) -> str:
    """The published gateway config, every plan's limits raised a thousandfold."""
    return re.sub(
        r"^(burst_per_second|per_minute|daily_quota) = (\d+)$",
        lambda m: f"{m[1]} = {int(m[2]) * 1000}",
        text,
        flags=re.MULTILINE,
    )


def _credentials(mode: Mode) -> dict[str, dict[str, str]]:
    partner = {"id": "qa-partner", "name": "QA's marketplace"}
    mode.client.post("/admin/v1/partners", json=partner, headers=mode.admin).raise_for_status()
    day = 86_400  # a long run outlives the usual hour
    return {
        "customer": mode.token("alice", *SHOPPER, ttl_s=day),
        "till": mode.token("till-qa", *TILL, store_id="STORE-002", ttl_s=day),
        # the partner's token, not an API key: the fuzzer revokes and rotates the keys it
        # finds in the admin API's listing, its own among them
        "partner": mode.token("qa-app", *PARTNER, partner_id=partner["id"], ttl_s=day),
        "care": mode.token("sup-qa", *CARE, ttl_s=day),
        "operator": mode.token("ops-qa", roles=["admin"], ttl_s=day),
    }


_ROLES = {
    "customer": r"^/v[0-9]+/web/",
    "till": r"^/v[0-9]+/store/",
    "partner": r"^/v[0-9]+/partner/",
    "care": r"^/v[0-9]+/care/",
}


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _demo_orders(mode: Mode, creds: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """Alice's orders from the demo story (told in the background as the mesh starts): the
    delivered one she may return, and all of them, for QA's data."""
    deadline = time.monotonic() + 60
    while True:
        page = mode.client.get("/v2/web/orders", headers=creds["customer"]).json()
        orders = {o["status"]: o["order_id"] for o in page.get("items", [])}
        if "delivered" in orders and len(orders) >= 2:
            return {"delivered": [orders["delivered"]], "all": sorted(orders.values())}
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo story was not told: {page}")
        time.sleep(0.2)


def _dictionaries(orders: dict[str, list[str]]) -> list[str]:
    """Values that exist in the seeded mesh, given half the time where a field takes them, so
    that every operation is reached past its lookups (the rest stays random)."""
    values = {
        "skus": [f"SKU-{n:06d}" for n in range(1, 21)],
        "quantities": [1, 2],
        "stores": [f"STORE-{n:03d}" for n in range(1, 10)],
        "members": ["M-ALICE", "M-BOB"],
        "orders": orders["all"],
        "returnable": orders["delivered"],
        "returned_skus": ["SKU-000007"],  # what alice's delivered order holds
    }
    lines = []
    for name, items in values.items():
        lines += [f"[dictionaries.{name}]", f"values = {_toml(items)}", ""]
    bindings = {
        "body.lines[*].sku": "skus",
        "body.lines[*].quantity": "quantities",
        "body.sku": "skus",
        "path.sku": "skus",
        "path.store_id": "stores",
        "body.pickup_store_id": "stores",
        "body.location_id": "stores",
        "query.store": "stores",
        "path.member_id": "members",
        "body.member_id": "members",
        "path.order_id": "orders",
        "body.order_id": "orders",
    }
    lines.append("[parameters]")
    lines += [
        f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}'
        for key, name in bindings.items()
    ]
    return [*lines, ""]


def _schemathesis_config(
    creds: dict[str, dict[str, str]],
    orders: dict[str, list[str]],
    path: Path,
    *,
    strict: bool,
) -> Path:
    lines = [
        *_dictionaries(orders),
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {_toml(BUSINESS_STATUSES)}",
        "",
        # the credentials are the role's (below), not values generated for the schemes
        "[generation]",
        "with-security-parameters = false",
        "",
    ]
    if strict:
        lines += ["[warnings]", 'fail-on = ["missing_test_data", "validation_mismatch"]', ""]
    for role, regex in _ROLES.items():
        lines += [
            "[[operations]]",
            f"include-path-regex = {_toml(regex)}",
            f"headers = {_toml(creds[role])}",
            "",
        ]
    lines += [
        "[[operations]]",
        f"exclude-path-regex = {_toml('|'.join(_ROLES.values()))}",
        f"headers = {_toml(creds['operator'])}",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def run(
    mode_name: str = "embedded",
    *,
    max_examples: int = 100,
    seed: int | None = None,
    phases: str = "examples,coverage,fuzzing,stateful",
    strict: bool = True,
    extra: list[str] | None = None,
) -> tuple[int, str]:
    """Start a mode, provision the roles, run schemathesis; its exit code and output.
    `strict`: the warnings that mean data never reached an operation fail the run too."""
    tmp = Path(tempfile.mkdtemp(prefix="rm-qa-"))
    with running_mode(mode_name, tmp, qa_config) as mode:
        creds = _credentials(mode)
        config = _schemathesis_config(
            creds, _demo_orders(mode, creds), tmp / "schemathesis.toml", strict=strict
        )
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{mode.gateway.url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            phases,
            "--max-examples",
            str(max_examples),
            # one: Python 3.11's ast is not thread-safe (hypothesis parses lambdas' source,
            # and two workers broke it: "AST constructor recursion depth mismatch")
            "--workers",
            "1",
            "--no-color",
            *(["--seed", str(seed)] if seed is not None else []),
            *(extra or []),
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=tmp,  # no schemathesis.toml of the repository's: this run's own
        )
    return done.returncode, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "mesh"], default="embedded")
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("extra", nargs="*", help="more options for `schemathesis run`")
    args = parser.parse_args()
    code, output = run(
        args.mode,
        max_examples=args.max_examples,
        seed=args.seed,
        phases=args.phases,
        extra=args.extra,
    )
    print(output)
    return code


if __name__ == "__main__":
    sys.exit(main())
