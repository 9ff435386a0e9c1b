"""An identity provider's JWKS endpoint for tests: serves the file named by JWKS_FILE, read
anew on every request (so a test can rotate keys), and counts how often it was asked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def create() -> Any:
    path = Path(os.environ["JWKS_FILE"])
    counter = path.with_suffix(".hits")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        # A test fixture: tiny files a test rewrites between requests, read on the loop.
        if scope["path"] == "/jwks.json":
            seen = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(seen + 1))
        body = path.read_bytes()  # noqa: ASYNC240
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
