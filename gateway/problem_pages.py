"""The problem-type catalogue, served by the gateway: `/problems` lists every type (JSON) and
`/problems/<slug>` is the page a problem's `type` URI names, with its title, status and
meaning (RFC 9457 section 3.1.1: a type URI should lead to human-readable documentation)."""

from __future__ import annotations

import html
from typing import Annotated

import msgspec
from litestar import MediaType, Response, get
from litestar.params import Parameter

from contracts.problem_types import CATALOGUE, MAX_TYPES, ProblemType, by_slug
from services.kit.errors import NotFound, problem_responses

__all__ = ["problem_handlers"]

Slug = Annotated[str, Parameter(pattern=r"^[a-z][a-z0-9-]{0,63}\Z", max_length=64)]


def _page(entry: ProblemType) -> str:
    e = {k: html.escape(str(v)) for k, v in (
        ("slug", entry.slug), ("type", entry.type), ("title", entry.title),
        ("status", entry.status), ("meaning", entry.meaning),
    )}  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e["title"]} ({e["status"]})</title></head>
<body>
<h1>{e["title"]}</h1>
<p>HTTP status <strong>{e["status"]}</strong>; problem type <code>{e["type"]}</code></p>
<p>{e["meaning"]}</p>
<p><a href="/problems">Every problem type</a> (JSON)</p>
</body></html>
"""


@get("/problems", tags=["gateway"], summary="Every problem type the mesh answers")
async def problem_types() -> Annotated[list[ProblemType], msgspec.Meta(max_length=MAX_TYPES)]:
    return list(CATALOGUE)


@get(
    "/problems/{slug:str}",
    tags=["gateway"],
    summary="One problem type: its title, status and meaning (the page its type URI names)",
    media_type=MediaType.HTML,
    responses=problem_responses(404),
)
async def problem_page(slug: Slug) -> Response[str]:
    entry = by_slug(slug)
    if entry is None:
        raise NotFound(f"no problem type {slug}")
    return Response(_page(entry), media_type=MediaType.HTML)


def problem_handlers() -> list[object]:
    return [problem_types, problem_page]
