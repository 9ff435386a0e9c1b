"""Version lifecycle headers: RFC 9745 `Deprecation`, RFC 8594 `Sunset`, and the successor.

`Deprecation` is a Structured Field Date (`@<unix seconds>`); `Sunset` an HTTP-date; the
successor is a `Link` with `rel="successor-version"` pointing at the same path in the
successor version.
"""

from __future__ import annotations

from email.utils import format_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import VersionConfig

__all__ = ["lifecycle_headers"]


def lifecycle_headers(version: VersionConfig, api: str, rest: str) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    if version.status == "deprecated" and version.deprecated_at and version.sunset:
        headers.append((b"deprecation", f"@{int(version.deprecated_at.timestamp())}".encode()))
        headers.append((b"sunset", format_datetime(version.sunset, usegmt=True).encode()))
    if version.status != "current" and version.successor:
        target = f"/{version.successor}/{api}{rest}"
        headers.append((b"link", f'<{target}>; rel="successor-version"'.encode()))
    return headers
