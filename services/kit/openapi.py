"""The OpenAPI document of an app, with its models' schemas exactly as msgspec validates them,
the rules across their fields (contracts/rules.py) and the documented examples of the
experience APIs' contracts (contracts/examples.py).

Litestar generates component schemas itself and drops constraints that sit on the items of
a container (`list[Annotated[str, Meta(pattern=...)]]` becomes `items: {type: string}`), so a
published contract would accept what the service refuses. msgspec's own JSON Schema is the
validator's truth: every component that is one of our Structs is replaced by it.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import TYPE_CHECKING, Any

import msgspec

import contracts.care
import contracts.models
import contracts.partner
import contracts.postings
import contracts.problem_types
import contracts.problems
import contracts.store
import contracts.web
from contracts.examples import EXAMPLES
from contracts.rules import rule_schema

if TYPE_CHECKING:
    from collections.abc import Iterable

    from litestar import Litestar

__all__ = ["openapi_document", "structs_of"]


def structs_of(*modules: ModuleType) -> list[type[msgspec.Struct]]:
    return [
        obj
        for module in modules
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, msgspec.Struct) and obj.__module__ == module.__name__
    ]


_CONTRACTS = structs_of(
    contracts.care,
    contracts.models,
    contracts.partner,
    contracts.postings,
    contracts.problem_types,
    contracts.problems,
    contracts.store,
    contracts.web,
)


def openapi_document(app: Litestar, extra: Iterable[type[msgspec.Struct]] = ()) -> dict[str, Any]:
    spec = app.openapi_schema.to_schema()
    _, exact = msgspec.json.schema_components(
        [*_CONTRACTS, *extra], ref_template="#/components/schemas/{name}"
    )
    schemas = spec.get("components", {}).get("schemas", {})
    examples = {struct.__name__: example for struct, example in EXAMPLES.items()}
    rules = {struct.__name__: rule_schema(struct) for struct in [*_CONTRACTS, *extra]}
    for name in list(schemas):
        if name in exact:
            schemas[name] = {**exact[name], **rules.get(name, {})}
        if name in examples:
            schemas[name] = {**schemas[name], "examples": [examples[name]]}
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", ()) if isinstance(operation, dict) else ():
                parameter["schema"] = _not_null(parameter.get("schema", {}))
    return spec


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter is absent or has a value: never null. Litestar writes an optional one as
    `oneOf: [string, null]` with its constraints beside the `oneOf`; published so, a client
    (or a fuzzer) may think `null` is a value to send. The string it is, constraints in."""
    branches = schema.get("oneOf")
    if not isinstance(branches, list):
        return schema
    rest = [b for b in branches if b != {"type": "null"}]
    if len(rest) != 1 or len(rest) == len(branches):
        return schema
    outer = {k: v for k, v in schema.items() if k != "oneOf"}
    return {**rest[0], **outer}
