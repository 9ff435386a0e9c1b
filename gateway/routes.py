"""Route tables: which methods and credentials each path of an API version accepts."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import RouteConfig

__all__ = ["RouteTable"]


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.strip("/").split("/") if pattern.strip("/") else []:
        if segment == "**":
            parts.append(r"(?:/.*)?")
            break
        parts.append("/[^/]+" if segment == "*" else "/" + re.escape(segment))
    return re.compile("^" + "".join(parts) + "/?$")


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
