"""Bounds that published contracts share: how long a patterned string can be, and the integer
types of counts and amounts, each with its range (which a contract's JSON Schema states as
`minimum`/`maximum`, and `services/kit/openapi.py` as the `format` the range fits in)."""

from __future__ import annotations

import re
import re._parser as _regex_parser  # the stdlib's own regex parser (Python 3.11+)
from datetime import datetime
from typing import Annotated, Any

import msgspec

__all__ = [
    "MAX_SAFE_INT",
    "Count",
    "Cursor",
    "Detail",
    "Name",
    "Note",
    "Signed",
    "Subject",
    "Timestamp",
    "longest_match",
    "publish_patterns",
]

#: the largest integer every JSON parser reads exactly (IEEE 754 doubles: 2**53 - 1)
MAX_SAFE_INT = 2**53 - 1

#: a count or total that cannot be negative
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
#: a signed amount (points booked, a stock delta as booked)
Signed = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]


#: a time the mesh answers, as RFC 3339 with its offset (msgspec writes it so; its schema for
#: a plain `datetime` says only "string")
Timestamp = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]
#: a product's, a store's or a partner's name, as the system of record holds it
Name = Annotated[str, msgspec.Meta(max_length=200)]
#: a page's `next_cursor`, passed back as it is
Cursor = Annotated[str, msgspec.Meta(max_length=200)]
#: who a customer or an agent is: a JWT subject (the gateway takes up to 100 characters), a
#: partner's buyer (`partner:<partner>:<ref>`) or a store's walk-in customer, as the services
#: keep it (an order's `customer` column)
Subject = Annotated[str, msgspec.Meta(max_length=200)]
#: a person's note: why an agent looked, why points were adjusted, why a return came back
Note = Annotated[str, msgspec.Meta(max_length=200)]
#: what the mesh says about a refusal or a state (a problem's detail, a rejection's reason)
Detail = Annotated[str, msgspec.Meta(max_length=2000)]


def longest_match(pattern: str) -> int | None:
    """The length of the longest string an anchored `pattern` (`^...$`) matches, or None when
    it has no end (a `*` or `+`) or is not anchored at both ends. Python's regex parser
    computes it (`getwidth`); there is no public API for it, and writing one would repeat
    the parser."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return None
    try:
        _, longest = _regex_parser.parse(pattern).getwidth()
    except re.error:
        return None
    return None if longest >= _regex_parser.MAXREPEAT else int(longest)


def publish_patterns(node: Any) -> None:
    r"""Patterns as a JSON Schema reads them (ECMA-262). The code's end with `\Z`, where
    Python's `$` would also match before a final newline (msgspec and Litestar search with
    `re`): "SKU-001\n" passed a `^...$` SKU, which the published `$` refuses. Published, the
    `\Z` is ECMA's `$`, the same rule. A pattern ending with a bare `$` is refused here, so
    a new one cannot publish a rule the code does not keep."""
    if isinstance(node, list):
        for item in node:
            publish_patterns(item)
        return
    if not isinstance(node, dict):
        return
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        if pattern.endswith("$") and not pattern.endswith("\\$"):
            raise ValueError(f"pattern {pattern!r}: end it with \\Z (Python's $ takes a final \\n)")
        if pattern.endswith("\\Z"):
            node["pattern"] = pattern[:-2] + "$"
    for key, value in node.items():
        if key not in ("examples", "example", "default", "enum", "const"):
            publish_patterns(value)
