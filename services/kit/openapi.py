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
from typing import TYPE_CHECKING, Annotated, Any, get_origin

import msgspec

import contracts.care
import contracts.models
import contracts.partner
import contracts.postings
import contracts.problem_types
import contracts.problems
import contracts.store
import contracts.web
from contracts.bounds import longest_match, publish_patterns
from contracts.examples import EXAMPLES
from contracts.rules import rule_schema
from services.kit.app import OPEN_PATHS
from services.kit.identity import IDENTITY_HEADER

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
    for path, item in spec.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", ()):
                parameter["schema"] = _not_null(parameter.get("schema", {}))
            if path in OPEN_PATHS:
                operation["security"] = []
    _bound_lists(app, spec)
    publish_patterns(spec)
    _derive_bounds(spec)
    spec["security"] = [{"Identity": []}]
    spec.setdefault("components", {})["securitySchemes"] = {"Identity": _IDENTITY_SCHEME}
    spec["servers"] = [_INTERNAL_SERVER]
    return spec


#: every route but health answers only a caller whose identity the gateway (or a service of
#: the mesh) signed: `ServiceApp.require_identity`
_IDENTITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": IDENTITY_HEADER,
    "description": "The caller as the gateway established it: a JWT (HS256, 60 s) that the "
    "gateway or a service of the mesh signs with the mesh's secret. Clients never send it; "
    "the gateway drops one a client sends.",
}
#: a service is reached only inside the mesh, through the gateway (its spec is for the mesh's
#: own developers and for the gateway, which publishes the public part)
_INTERNAL_SERVER = {
    "url": "/",
    "x-internal": True,
    "description": "The service inside the mesh, in whichever environment it runs (local, "
    "staging, production); never reached from outside but through the gateway",
}


def _bound_lists(app: Litestar, spec: dict[str, Any]) -> None:
    """A handler that answers a bare list says how long it gets in its return annotation
    (`Annotated[list[X], msgspec.Meta(max_length=N)]`, which Litestar's schema drops):
    published as the answer's `maxItems`."""
    paths = spec.get("paths", {})
    for route in app.routes:
        for method, handler in getattr(route, "route_handler_map", {}).items():
            handler = handler[0] if isinstance(handler, tuple) else handler
            meta = _list_meta(handler.parsed_fn_signature.return_type.raw)
            operation = paths.get(route.path_format, {}).get(str(method).lower())
            if meta is None or not isinstance(operation, dict):
                continue
            for answer in operation.get("responses", {}).values():
                for body in answer.get("content", {}).values():
                    if body.get("schema", {}).get("type") == "array":
                        body["schema"]["maxItems"] = meta.max_length


def _list_meta(annotation: Any) -> msgspec.Meta | None:
    if get_origin(annotation) is not Annotated:
        return None
    for extra in annotation.__metadata__:
        if isinstance(extra, msgspec.Meta) and extra.max_length is not None:
            return extra
    return None


_INT32 = (-(2**31), 2**31 - 1)


def _derive_bounds(node: Any) -> None:
    """What a schema's own rules already imply, stated as the keywords clients and linters
    read: an integer's `format` from its range (int32 when both bounds fit, int64 otherwise),
    a string's `maxLength` from its pattern (the longest string an anchored pattern matches,
    by Python's regex parser). Derived, never invented: a schema without bounds stays so."""
    if isinstance(node, list):
        for item in node:
            _derive_bounds(item)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "integer" and "format" not in node:
        low, high = node.get("minimum"), node.get("maximum")
        if low is not None and high is not None:
            fits = _INT32[0] <= low and high <= _INT32[1]
            node["format"] = "int32" if fits else "int64"
    if kind == "string" and "maxLength" not in node and isinstance(node.get("pattern"), str):
        longest = longest_match(node["pattern"])
        if longest is not None:
            node["maxLength"] = longest
    for value in node.values():
        _derive_bounds(value)


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
