"""Every problem type the code can answer is in the catalogue (contracts/problem_types.py),
with the catalogue's status and title, and the gateway serves each at its URL. The fuzzers
(`tests/test_contracts_fuzz.py`) check the types they meet against it as well."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import gateway
import services
from contracts.problem_types import CATALOGUE, by_slug
from contracts.problems import PROBLEM_TYPE_BASE
from services.kit.errors import _HTTP_SLUGS, ServiceError
from tests.conftest import Running
from tests.support import patiently

ROOT = Path(__file__).parent.parent


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_error_class_is_in_the_catalogue_with_its_status_and_title() -> None:
    for package in (services, gateway):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    for error in _subclasses(ServiceError):
        entry = by_slug(error.slug)
        where = f"{error.__module__}.{error.__name__}"
        assert entry is not None, f"{where}: {error.slug} is not in the catalogue"
        assert (entry.status, entry.title) == (error.status, error.title), where


def _literal_problems() -> Iterator[tuple[str, int, str | None, int | None, str | None]]:
    """(file, line, slug, status, title) of every problem the code spells out: a gateway
    answer (`send_problem`), a saga's refusal (`Refused`), a type built from a slug
    (`problem_type`), an error class's `slug` attribute outside ServiceError's tree."""
    for path in [*ROOT.joinpath("gateway").rglob("*.py"), *ROOT.joinpath("services").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
                if name == "send_problem" and len(args) >= 5 and args[3] is not None:
                    yield str(path), node.lineno, args[3], args[2], args[4]
                elif name == "Refused" and len(args) >= 2 and args[1] is not None:
                    yield str(path), node.lineno, args[1], args[0], None
                elif name == "problem_type" and args and args[0] is not None:
                    yield str(path), node.lineno, args[0], None, None
            elif isinstance(node, ast.ClassDef):
                attrs = {
                    target.id: stmt.value.value
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                    for target in stmt.targets
                    if isinstance(target, ast.Name)
                }
                if isinstance(attrs.get("slug"), str):
                    yield (
                        str(path),
                        node.lineno,
                        attrs["slug"],
                        attrs.get("status"),
                        attrs.get("title"),
                    )


def test_every_problem_the_code_spells_out_is_in_the_catalogue() -> None:
    found = list(_literal_problems())
    assert len(found) > 30  # the scan sees the code
    for path, line, slug, status, title in found:
        entry = by_slug(slug)
        assert entry is not None, f"{path}:{line}: {slug} is not in the catalogue"
        if status is not None:
            assert entry.status == status, f"{path}:{line}: {slug} is {entry.status}"
        if title is not None:
            assert entry.title == title, f"{path}:{line}: {slug} is titled {entry.title!r}"
    for status, slug in _HTTP_SLUGS.items():
        entry = by_slug(slug)
        assert entry is not None and entry.status == status, slug


def test_the_catalogue_lists_each_type_once_with_its_uri() -> None:
    slugs = [t.slug for t in CATALOGUE]
    assert len(slugs) == len(set(slugs))
    for entry in CATALOGUE:
        assert entry.type == PROBLEM_TYPE_BASE + entry.slug
        assert 400 <= entry.status <= 599 and entry.title and entry.meaning


async def test_the_gateway_serves_each_type_at_its_url(mesh: Running) -> None:
    listed = await mesh.client.get("/problems")
    assert listed.status_code == 200, listed.text
    assert [t["slug"] for t in listed.json()] == [t.slug for t in CATALOGUE]
    for entry in CATALOGUE:
        # the gateway's own pages are limited per address too: a burst waits its turn
        page = await patiently(lambda slug=entry.slug: mesh.client.get(f"/problems/{slug}"))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert entry.title in page.text and str(entry.status) in page.text
    unknown = await mesh.client.get("/problems/no-such-type")
    assert unknown.status_code == 404
    assert unknown.json()["type"] == PROBLEM_TYPE_BASE + "not-found"


@pytest.mark.parametrize("slug", ["not-found", "validation", "rate-limited"])
def test_the_commonest_types_are_there(slug: str) -> None:
    assert by_slug(slug) is not None
