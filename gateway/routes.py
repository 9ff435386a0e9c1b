"""Route tables: which methods and credentials each path of an API version accepts."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from gateway.config import RouteConfig

__all__ = ["RouteTable", "weight_of"]

#: however many items a query names, a request weighs at most this many (the service
#: refuses such a request anyway; the bound keeps one from draining a day's quota)
_MAX_ITEMS = 1000


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.strip("/").split("/") if pattern.strip("/") else []:
        if segment == "**":
            parts.append(r"(?:/.*)?")
            break
        parts.append("/[^/]+" if segment == "*" else "/" + re.escape(segment))
    return re.compile("^" + "".join(parts) + r"/?\Z")


class RouteTable:
    """Matches an upstream-relative path to its route: the first route whose path matches
    is the resource (with the routes that repeat that path for other methods, each with its
    own scopes), and their methods are all that path allows (405 with `Allow` otherwise),
    so `Allow` never advertises a method another, broader route happens to accept."""

    def __init__(self, routes: list[RouteConfig]) -> None:
        self.routes = [(_compile(r.path), r) for r in routes]

    def match(self, method: str, path: str) -> tuple[RouteConfig | None, list[str]]:
        """(the route, or None) and, when only other methods match, the methods allowed."""
        lookup = "GET" if method == "HEAD" else method
        resource: str | None = None
        allowed: list[str] = []
        for regex, route in self.routes:
            if resource is not None and route.path != resource:
                continue
            if regex.match(path):
                resource = route.path
                if lookup in route.methods or method in route.methods:
                    return route, []
                allowed.extend(m for m in route.methods if m not in allowed)
        return None, allowed

    def methods(self, path: str) -> list[str]:
        """Every method the path's resource allows (across the routes that repeat it)."""
        route, allowed = self.match("OPTIONS", path)
        return list(route.methods) if route is not None else allowed


def weight_of(route: RouteConfig, query_string: bytes) -> int:
    """What one request on `route` counts against its plan: its weight, times the items its
    `weight_per` query parameter lists (comma-separated, repeated or not)."""
    if route.weight_per is None:
        return route.weight
    items = sum(
        len([v for v in value.split(",") if v.strip()])
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        if name == route.weight_per
    )
    return route.weight * min(max(1, items), _MAX_ITEMS)
